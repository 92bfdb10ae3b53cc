"""SQLAlchemy 2 (with psycopg 3) and pandas against `sluice server`, as a
data engineer would point them at it: connect, reflect the catalog
(tables, columns, primary key) and read a pull query into a DataFrame.
Prints what it got; tests/postgres_tools.rs compares it exactly.

Usage: catalog_client.py PORT
"""
import sys

import pandas as pd
from sqlalchemy import create_engine, inspect, text

port = sys.argv[1]
engine = create_engine(f"postgresql+psycopg://sluice@127.0.0.1:{port}/shop")
with engine.connect() as c:
    print("version", engine.dialect.server_version_info[:1])
    print("schema", c.execute(text("select current_schema()")).scalar())

insp = inspect(engine)
print("tables", sorted(insp.get_table_names()))
for column in insp.get_columns("orders"):
    print("column", column["name"], column["type"], column["nullable"], column["comment"])
print("pk", insp.get_pk_constraint("orders"))
print("pk of a stream", insp.get_pk_constraint("payments"))
frame = pd.read_sql("select id, customer, amount from orders where id = 1", engine)
print(frame.to_string(index=False))
