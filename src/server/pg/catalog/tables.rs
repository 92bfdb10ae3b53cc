//! The catalog's tables: their columns, written as `name:type` in
//! Postgres's own type names (mapped to Arrow by [`arrow_type`]), and rows
//! made column by column from named values.
//!
//! OIDs are `BIGINT` (Postgres's `oid` is unsigned 32-bit; every OID Sluice
//! hands out fits), `"char"` and `name` are text, `int2vector` and
//! `oidvector` are arrays, and a column of a type Sluice has no values of
//! (`aclitem[]`, `pg_node_tree`) is text that is always NULL.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;

use crate::error::{Error, Result};

/// A catalog table: its name, its OID (Postgres's own where it has one)
/// and its columns.
pub(super) struct Def {
    pub name: &'static str,
    pub oid: i64,
    pub columns: &'static str,
}

const fn def(name: &'static str, oid: i64, columns: &'static str) -> Def {
    Def { name, oid, columns }
}

/// `pg_catalog`'s tables and views.
pub(super) const PG_CATALOG: &[Def] = &[
    def("pg_aggregate", 2600, "aggfnoid:regproc aggkind:char aggnumdirectargs:int2 aggtransfn:regproc aggfinalfn:regproc aggcombinefn:regproc aggserialfn:regproc aggdeserialfn:regproc aggmtransfn:regproc aggminvtransfn:regproc aggmfinalfn:regproc aggfinalextra:bool aggmfinalextra:bool aggfinalmodify:char aggmfinalmodify:char aggsortop:oid aggtranstype:oid aggtransspace:int4 aggmtranstype:oid aggmtransspace:int4 agginitval:text aggminitval:text"),
    def("pg_am", 2601, "oid:oid amname:name amhandler:regproc amtype:char"),
    def("pg_amop", 2602, "oid:oid amopfamily:oid amoplefttype:oid amoprighttype:oid amopstrategy:int2 amoppurpose:char amopopr:oid amopmethod:oid amopsortfamily:oid"),
    def("pg_amproc", 2603, "oid:oid amprocfamily:oid amproclefttype:oid amprocrighttype:oid amprocnum:int2 amproc:regproc"),
    def("pg_attrdef", 2604, "oid:oid adrelid:oid adnum:int2 adbin:pg_node_tree"),
    def("pg_attribute", 1249, "attrelid:oid attname:name atttypid:oid attstattarget:int4 attlen:int2 attnum:int2 attndims:int4 attcacheoff:int4 atttypmod:int4 attbyval:bool attalign:char attstorage:char attcompression:char attnotnull:bool atthasdef:bool atthasmissing:bool attidentity:char attgenerated:char attisdropped:bool attislocal:bool attinhcount:int4 attcollation:oid attacl:aclitem[] attoptions:text[] attfdwoptions:text[] attmissingval:text"),
    def("pg_authid", 1260, "oid:oid rolname:name rolsuper:bool rolinherit:bool rolcreaterole:bool rolcreatedb:bool rolcanlogin:bool rolreplication:bool rolbypassrls:bool rolconnlimit:int4 rolpassword:text rolvaliduntil:timestamptz"),
    def("pg_auth_members", 1261, "oid:oid roleid:oid member:oid grantor:oid admin_option:bool"),
    def("pg_cast", 2605, "oid:oid castsource:oid casttarget:oid castfunc:oid castcontext:char castmethod:char"),
    def("pg_class", 1259, "oid:oid relname:name relnamespace:oid reltype:oid reloftype:oid relowner:oid relam:oid relfilenode:oid reltablespace:oid relpages:int4 reltuples:float4 relallvisible:int4 reltoastrelid:oid relhasindex:bool relisshared:bool relpersistence:char relkind:char relnatts:int2 relchecks:int2 relhasrules:bool relhastriggers:bool relhassubclass:bool relrowsecurity:bool relforcerowsecurity:bool relispopulated:bool relreplident:char relispartition:bool relrewrite:oid relfrozenxid:xid relminmxid:xid relacl:aclitem[] reloptions:text[] relpartbound:pg_node_tree"),
    def("pg_collation", 3456, "oid:oid collname:name collnamespace:oid collowner:oid collprovider:char collisdeterministic:bool collencoding:int4 collcollate:text collctype:text colliculocale:text collversion:text"),
    def("pg_constraint", 2606, "oid:oid conname:name connamespace:oid contype:char condeferrable:bool condeferred:bool convalidated:bool conrelid:oid contypid:oid conindid:oid conparentid:oid confrelid:oid confupdtype:char confdeltype:char confmatchtype:char conislocal:bool coninhcount:int4 connoinherit:bool conkey:int2[] confkey:int2[] conpfeqop:oid[] conppeqop:oid[] conffeqop:oid[] confdelsetcols:int2[] conexclop:oid[] conbin:pg_node_tree"),
    def("pg_conversion", 2607, "oid:oid conname:name connamespace:oid conowner:oid conforencoding:int4 contoencoding:int4 conproc:regproc condefault:bool"),
    def("pg_database", 1262, "oid:oid datname:name datdba:oid encoding:int4 datlocprovider:char datistemplate:bool datallowconn:bool datconnlimit:int4 datfrozenxid:xid datminmxid:xid dattablespace:oid datcollate:text datctype:text daticulocale:text datcollversion:text datacl:aclitem[]"),
    def("pg_db_role_setting", 2964, "setdatabase:oid setrole:oid setconfig:text[]"),
    def("pg_default_acl", 826, "oid:oid defaclrole:oid defaclnamespace:oid defaclobjtype:char defaclacl:aclitem[]"),
    def("pg_depend", 2608, "classid:oid objid:oid objsubid:int4 refclassid:oid refobjid:oid refobjsubid:int4 deptype:char"),
    def("pg_description", 2609, "objoid:oid classoid:oid objsubid:int4 description:text"),
    def("pg_enum", 3501, "oid:oid enumtypid:oid enumsortorder:float4 enumlabel:name"),
    def("pg_event_trigger", 3466, "oid:oid evtname:name evtevent:name evtowner:oid evtfoid:oid evtenabled:char evttags:text[]"),
    def("pg_extension", 3079, "oid:oid extname:name extowner:oid extnamespace:oid extrelocatable:bool extversion:text extconfig:oid[] extcondition:text[]"),
    def("pg_foreign_data_wrapper", 2328, "oid:oid fdwname:name fdwowner:oid fdwhandler:oid fdwvalidator:oid fdwacl:aclitem[] fdwoptions:text[]"),
    def("pg_foreign_server", 1417, "oid:oid srvname:name srvowner:oid srvfdw:oid srvtype:text srvversion:text srvacl:aclitem[] srvoptions:text[]"),
    def("pg_foreign_table", 3118, "ftrelid:oid ftserver:oid ftoptions:text[]"),
    def("pg_index", 2610, "indexrelid:oid indrelid:oid indnatts:int2 indnkeyatts:int2 indisunique:bool indnullsnotdistinct:bool indisprimary:bool indisexclusion:bool indimmediate:bool indisclustered:bool indisvalid:bool indcheckxmin:bool indisready:bool indislive:bool indisreplident:bool indkey:int2vector indcollation:oidvector indclass:oidvector indoption:int2vector indexprs:pg_node_tree indpred:pg_node_tree"),
    def("pg_inherits", 2611, "inhrelid:oid inhparent:oid inhseqno:int4 inhdetachpending:bool"),
    def("pg_init_privs", 3394, "objoid:oid classoid:oid objsubid:int4 privtype:char initprivs:aclitem[]"),
    def("pg_language", 2612, "oid:oid lanname:name lanowner:oid lanispl:bool lanpltrusted:bool lanplcallfoid:oid laninline:oid lanvalidator:oid lanacl:aclitem[]"),
    def("pg_largeobject_metadata", 2995, "oid:oid lomowner:oid lomacl:aclitem[]"),
    def("pg_namespace", 2615, "oid:oid nspname:name nspowner:oid nspacl:aclitem[]"),
    def("pg_opclass", 2616, "oid:oid opcmethod:oid opcname:name opcnamespace:oid opcowner:oid opcfamily:oid opcintype:oid opcdefault:bool opckeytype:oid"),
    def("pg_operator", 2617, "oid:oid oprname:name oprnamespace:oid oprowner:oid oprkind:char oprcanmerge:bool oprcanhash:bool oprleft:oid oprright:oid oprresult:oid oprcom:oid oprnegate:oid oprcode:regproc oprrest:regproc oprjoin:regproc"),
    def("pg_opfamily", 2753, "oid:oid opfmethod:oid opfname:name opfnamespace:oid opfowner:oid"),
    def("pg_partitioned_table", 3350, "partrelid:oid partstrat:char partnatts:int2 partdefid:oid partattrs:int2vector partclass:oidvector partcollation:oidvector partexprs:pg_node_tree"),
    def("pg_policy", 3256, "oid:oid polname:name polrelid:oid polcmd:char polpermissive:bool polroles:oid[] polqual:pg_node_tree polwithcheck:pg_node_tree"),
    def("pg_proc", 1255, "oid:oid proname:name pronamespace:oid proowner:oid prolang:oid procost:float4 prorows:float4 provariadic:oid prosupport:regproc prokind:char prosecdef:bool proleakproof:bool proisstrict:bool proretset:bool provolatile:char proparallel:char pronargs:int2 pronargdefaults:int2 prorettype:oid proargtypes:oidvector proallargtypes:oid[] proargmodes:char[] proargnames:text[] proargdefaults:pg_node_tree protrftypes:oid[] prosrc:text probin:text prosqlbody:pg_node_tree proconfig:text[] proacl:aclitem[]"),
    def("pg_publication", 6104, "oid:oid pubname:name pubowner:oid puballtables:bool pubinsert:bool pubupdate:bool pubdelete:bool pubtruncate:bool pubviaroot:bool"),
    def("pg_publication_namespace", 6237, "oid:oid pnpubid:oid pnnspid:oid"),
    def("pg_publication_rel", 6106, "oid:oid prpubid:oid prrelid:oid prqual:pg_node_tree prattrs:int2vector"),
    def("pg_range", 3541, "rngtypid:oid rngsubtype:oid rngmultitypid:oid rngcollation:oid rngsubopc:oid rngcanonical:regproc rngsubdiff:regproc"),
    def("pg_rewrite", 2618, "oid:oid rulename:name ev_class:oid ev_type:char ev_enabled:char is_instead:bool ev_qual:pg_node_tree ev_action:pg_node_tree"),
    def("pg_roles", 12_001, "rolname:name rolsuper:bool rolinherit:bool rolcreaterole:bool rolcreatedb:bool rolcanlogin:bool rolreplication:bool rolconnlimit:int4 rolpassword:text rolvaliduntil:timestamptz rolbypassrls:bool rolconfig:text[] oid:oid"),
    def("pg_seclabel", 3596, "objoid:oid classoid:oid objsubid:int4 provider:text label:text"),
    def("pg_seclabels", 12_002, "objoid:oid classoid:oid objsubid:int4 objtype:text objnamespace:oid objname:text provider:text label:text"),
    def("pg_sequence", 2224, "seqrelid:oid seqtypid:oid seqstart:int8 seqincrement:int8 seqmax:int8 seqmin:int8 seqcache:int8 seqcycle:bool"),
    def("pg_settings", 12_003, "name:text setting:text unit:text category:text short_desc:text extra_desc:text context:text vartype:text source:text min_val:text max_val:text enumvals:text[] boot_val:text reset_val:text sourcefile:text sourceline:int4 pending_restart:bool"),
    def("pg_shdescription", 2396, "objoid:oid classoid:oid description:text"),
    def("pg_shseclabel", 3592, "objoid:oid classoid:oid provider:text label:text"),
    def("pg_statistic_ext", 3381, "oid:oid stxrelid:oid stxname:name stxnamespace:oid stxowner:oid stxstattarget:int4 stxkeys:int2vector stxkind:char[] stxexprs:pg_node_tree"),
    def("pg_subscription", 6100, "oid:oid subdbid:oid subskiplsn:text subname:name subowner:oid subenabled:bool subbinary:bool substream:char subtwophasestate:char subdisableonerr:bool subconninfo:text subslotname:name subsynccommit:text subpublications:text[]"),
    def("pg_tables", 12_004, "schemaname:name tablename:name tableowner:name tablespace:name hasindexes:bool hasrules:bool hastriggers:bool rowsecurity:bool"),
    def("pg_tablespace", 1213, "oid:oid spcname:name spcowner:oid spcacl:aclitem[] spcoptions:text[]"),
    def("pg_transform", 3576, "oid:oid trftype:oid trflang:oid trffromsql:regproc trftosql:regproc"),
    def("pg_trigger", 2620, "oid:oid tgrelid:oid tgparentid:oid tgname:name tgfoid:oid tgtype:int2 tgenabled:char tgisinternal:bool tgconstrrelid:oid tgconstrindid:oid tgconstraint:oid tgdeferrable:bool tginitdeferred:bool tgnargs:int2 tgattr:int2vector tgargs:bytea tgqual:pg_node_tree tgoldtable:name tgnewtable:name"),
    def("pg_ts_config", 3602, "oid:oid cfgname:name cfgnamespace:oid cfgowner:oid cfgparser:oid"),
    def("pg_ts_dict", 3600, "oid:oid dictname:name dictnamespace:oid dictowner:oid dicttemplate:oid dictinitoption:text"),
    def("pg_ts_parser", 3601, "oid:oid prsname:name prsnamespace:oid prsstart:regproc prstoken:regproc prsend:regproc prsheadline:regproc prslextype:regproc"),
    def("pg_ts_template", 3764, "oid:oid tmplname:name tmplnamespace:oid tmplinit:regproc tmpllexize:regproc"),
    def("pg_type", 1247, "oid:oid typname:name typnamespace:oid typowner:oid typlen:int2 typbyval:bool typtype:char typcategory:char typispreferred:bool typisdefined:bool typdelim:char typrelid:oid typsubscript:regproc typelem:oid typarray:oid typinput:regproc typoutput:regproc typreceive:regproc typsend:regproc typmodin:regproc typmodout:regproc typanalyze:regproc typalign:char typstorage:char typnotnull:bool typbasetype:oid typtypmod:int4 typndims:int4 typcollation:oid typdefaultbin:pg_node_tree typdefault:text typacl:aclitem[]"),
    def("pg_user", 12_005, "usename:name usesysid:oid usecreatedb:bool usesuper:bool userepl:bool usebypassrls:bool passwd:text valuntil:timestamptz useconfig:text[]"),
    def("pg_views", 12_006, "schemaname:name viewname:name viewowner:name definition:text"),
    def("pg_matviews", 12_007, "schemaname:name matviewname:name matviewowner:name tablespace:name hasindexes:bool ispopulated:bool definition:text"),
    def("pg_indexes", 12_008, "schemaname:name tablename:name indexname:name tablespace:name indexdef:text"),
    def("pg_stat_activity", 12_009, "datid:oid datname:name pid:int4 usesysid:oid usename:name application_name:text client_addr:text client_port:int4 backend_start:timestamptz state:text query:text"),
];

/// `information_schema`'s views.
pub(super) const INFORMATION_SCHEMA: &[Def] = &[
    def("schemata", 13_101, "catalog_name:name schema_name:name schema_owner:name default_character_set_catalog:name default_character_set_schema:name default_character_set_name:name sql_path:text"),
    def("tables", 13_102, "table_catalog:name table_schema:name table_name:name table_type:text self_referencing_column_name:name reference_generation:text user_defined_type_catalog:name user_defined_type_schema:name user_defined_type_name:name is_insertable_into:text is_typed:text commit_action:text"),
    def("columns", 13_103, "table_catalog:name table_schema:name table_name:name column_name:name ordinal_position:int4 column_default:text is_nullable:text data_type:text character_maximum_length:int4 character_octet_length:int4 numeric_precision:int4 numeric_precision_radix:int4 numeric_scale:int4 datetime_precision:int4 interval_type:text interval_precision:int4 character_set_catalog:name character_set_schema:name character_set_name:name collation_catalog:name collation_schema:name collation_name:name domain_catalog:name domain_schema:name domain_name:name udt_catalog:name udt_schema:name udt_name:name scope_catalog:name scope_schema:name scope_name:name maximum_cardinality:int4 dtd_identifier:name is_self_referencing:text is_identity:text identity_generation:text identity_start:text identity_increment:text identity_maximum:text identity_minimum:text identity_cycle:text is_generated:text generation_expression:text is_updatable:text"),
    def("table_constraints", 13_104, "constraint_catalog:name constraint_schema:name constraint_name:name table_catalog:name table_schema:name table_name:name constraint_type:text is_deferrable:text initially_deferred:text enforced:text nulls_distinct:text"),
    def("key_column_usage", 13_105, "constraint_catalog:name constraint_schema:name constraint_name:name table_catalog:name table_schema:name table_name:name column_name:name ordinal_position:int4 position_in_unique_constraint:int4"),
    def("views", 13_106, "table_catalog:name table_schema:name table_name:name view_definition:text check_option:text is_updatable:text is_insertable_into:text is_trigger_updatable:text is_trigger_deletable:text is_trigger_insertable_into:text"),
    def("referential_constraints", 13_107, "constraint_catalog:name constraint_schema:name constraint_name:name unique_constraint_catalog:name unique_constraint_schema:name unique_constraint_name:name match_option:text update_rule:text delete_rule:text"),
    def("routines", 13_108, "specific_catalog:name specific_schema:name specific_name:name routine_catalog:name routine_schema:name routine_name:name routine_type:text data_type:text"),
];

/// The Arrow type of a catalog column of Postgres type `ty`.
pub(super) fn arrow_type(ty: &str) -> DataType {
    let list = |item: DataType| DataType::List(Arc::new(Field::new_list_field(item, true)));
    match ty {
        "oid" | "xid" | "int8" => DataType::Int64,
        "int4" => DataType::Int32,
        "int2" => DataType::Int16,
        "float4" => DataType::Float32,
        "float8" => DataType::Float64,
        "bool" => DataType::Boolean,
        "timestamptz" => DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Microsecond,
            Some("+00:00".into()),
        ),
        "bytea" => DataType::Binary,
        "int2[]" | "int2vector" => list(DataType::Int16),
        "oid[]" | "oidvector" => list(DataType::Int64),
        "text[]" | "char[]" => list(DataType::Utf8),
        _ => DataType::Utf8,
    }
}

/// The columns of `def`: `(name, Postgres type)`.
pub(super) fn columns(def: &Def) -> impl Iterator<Item = (&'static str, &'static str)> {
    def.columns
        .split_whitespace()
        .filter_map(|c| c.split_once(':'))
}

/// The Arrow schema of `def`; `tableoid` last, for a `pg_catalog` table
/// (Postgres's system column: pg_dump reads it; `*` leaves it out, see
/// `rewrite.rs`). `int2vector` and `oidvector` columns are marked: they
/// are arrays to SQL, but their text is space-separated (`1 2`), which is
/// what pg_dump parses.
pub(super) fn schema(def: &Def, tableoid: bool) -> SchemaRef {
    let mut fields: Vec<Field> = columns(def)
        .map(|(name, ty)| {
            let field = Field::new(name, arrow_type(ty), true);
            match ty {
                "int2vector" | "oidvector" => field
                    .with_metadata([(VECTOR.to_string(), ty.to_string())].into_iter().collect()),
                _ => field,
            }
        })
        .collect();
    if tableoid {
        fields.push(Field::new(TABLEOID, DataType::Int64, true));
    }
    Arc::new(Schema::new(fields))
}

/// The metadata key that marks a vector column.
pub(super) const VECTOR: &str = "sluice.pg_vector";

pub(super) const TABLEOID: &str = "tableoid";

/// One row, as the values of the columns it names (the others: zero or
/// false for numbers and booleans, as Postgres's `NOT NULL` catalog
/// columns hold; NULL for text and arrays).
pub(super) type Row = Vec<(&'static str, ScalarValue)>;

/// A batch of `rows` of a table of `schema`; each value is cast to its
/// column's type.
pub(super) fn batch(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch> {
    let index: HashMap<&str, usize> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name().as_str(), i))
        .collect();
    let mut cells: Vec<Vec<ScalarValue>> = schema
        .fields()
        .iter()
        .map(|f| vec![unset(f.data_type()); rows.len()])
        .collect();
    for (r, row) in rows.iter().enumerate() {
        for (name, value) in row {
            let Some(&c) = index.get(name) else {
                return Err(Error::internal(format!(
                    "catalog row sets column {name}, which its table does not have"
                )));
            };
            let ty = schema.field(c).data_type();
            cells[c][r] = if value.is_null() {
                ScalarValue::try_from(ty)?
            } else {
                value.cast_to(ty)?
            };
        }
    }
    let columns = cells
        .into_iter()
        .zip(schema.fields())
        .map(|(values, f)| -> Result<ArrayRef> {
            if values.is_empty() {
                return Ok(new_null_array(f.data_type(), 0));
            }
            Ok(ScalarValue::iter_to_array(values)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// A column's value in a row that does not name it.
fn unset(ty: &DataType) -> ScalarValue {
    match ty {
        DataType::Boolean => ScalarValue::Boolean(Some(false)),
        DataType::Int16 => ScalarValue::Int16(Some(0)),
        DataType::Int32 => ScalarValue::Int32(Some(0)),
        DataType::Int64 => ScalarValue::Int64(Some(0)),
        DataType::Float32 => ScalarValue::Float32(Some(0.0)),
        DataType::Float64 => ScalarValue::Float64(Some(0.0)),
        other => ScalarValue::try_from(other).unwrap_or(ScalarValue::Null),
    }
}

/// Value helpers for rows.
pub(super) fn oid(v: i64) -> ScalarValue {
    ScalarValue::Int64(Some(v))
}

pub(super) fn text(v: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(v.into()))
}

pub(super) fn boolean(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}

pub(super) fn int(v: i64) -> ScalarValue {
    ScalarValue::Int64(Some(v))
}

/// An `int2` array (`int2vector`, `conkey`).
pub(super) fn int2s(values: &[i16]) -> ScalarValue {
    let items: Vec<ScalarValue> = values
        .iter()
        .map(|v| ScalarValue::Int16(Some(*v)))
        .collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Int16))
}

/// An `oid` array (`oidvector`).
pub(super) fn oids(values: &[i64]) -> ScalarValue {
    let items: Vec<ScalarValue> = values
        .iter()
        .map(|v| ScalarValue::Int64(Some(*v)))
        .collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Int64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_distinct_columns_of_known_types() {
        for def in PG_CATALOG.iter().chain(INFORMATION_SCHEMA) {
            let mut seen = std::collections::HashSet::new();
            for (name, _) in columns(def) {
                assert!(seen.insert(name), "{}.{name} twice", def.name);
            }
            assert_eq!(
                seen.len(),
                def.columns.split_whitespace().count(),
                "{}: a column without a type",
                def.name
            );
        }
    }

    #[test]
    fn rows_are_made_from_named_values() {
        let def = PG_CATALOG.iter().find(|d| d.name == "pg_index").unwrap();
        let schema = schema(def, true);
        assert_eq!(schema.fields().last().unwrap().name(), TABLEOID);
        let b = batch(
            &schema,
            &[vec![
                ("indexrelid", oid(7)),
                ("indisprimary", boolean(true)),
                ("indkey", int2s(&[1, 2])),
            ]],
        )
        .unwrap();
        assert_eq!(b.num_rows(), 1);
        assert_eq!(
            ScalarValue::try_from_array(b.column(0), 0).unwrap(),
            ScalarValue::Int64(Some(7))
        );
        assert_eq!(
            ScalarValue::try_from_array(b.column(1), 0).unwrap(),
            ScalarValue::Int64(Some(0))
        );
        // indpred, the last column before tableoid: text, so NULL.
        assert!(b.column(b.num_columns() - 2).is_null(0));
        assert!(batch(&schema, &[vec![("nope", oid(1))]]).is_err());
    }
}
