//! Statements on both sides of the planner's limits (`planner::limits`:
//! 1 MiB of text, expressions 1,000 operators deep, nesting 64 deep): long
//! operator chains, deep brackets, deeply nested types, many columns, CASE
//! with many branches, long IN lists, and text over 1 MiB.

use super::sqlgen::SqlGen;

/// Statements just under and just over the planner's limits: long
/// operator chains, deep brackets, deeply nested types, many columns,
/// CASE with many branches, long IN lists, and text over 1 MiB.
pub(super) fn limits(g: &mut SqlGen) -> String {
    let over = g.rng.chance(0.5);
    let name = g
        .pick_src(None)
        .map(|s| s.name)
        .unwrap_or_else(|| "S1".into());
    match g.rng.below(8) {
        0 => {
            let n = if over {
                1_000 + g.rng.below(3_000)
            } else {
                100 + g.rng.below(800)
            };
            let op = *g.rng.pick(&["+", "*", "-", "||"]).unwrap_or(&"+");
            let terms = vec!["1"; n as usize].join(op);
            format!("SELECT {terms} AS X FROM {name};")
        }
        1 => {
            let n = if over {
                1_000 + g.rng.below(2_000)
            } else {
                100 + g.rng.below(800)
            };
            let terms = vec!["ID = ID"; n as usize].join(" AND ");
            format!(
                "CREATE STREAM {} AS SELECT * FROM {name} WHERE {terms} EMIT CHANGES;",
                g.fresh("S")
            )
        }
        2 => {
            let d = (if over {
                65 + g.rng.below(200)
            } else {
                1 + g.rng.below(60)
            }) as usize;
            format!(
                "SELECT {}1{} AS X FROM {name};",
                "(".repeat(d),
                ")".repeat(d)
            )
        }
        3 => {
            let d = (if over {
                65 + g.rng.below(100)
            } else {
                1 + g.rng.below(60)
            }) as usize;
            format!(
                "CREATE STREAM {} (ID STRING KEY, A {}INT{}) WITH (KAFKA_TOPIC='deep', PARTITIONS=1, VALUE_FORMAT='JSON');",
                g.fresh("S"),
                "ARRAY<".repeat(d),
                ">".repeat(d)
            )
        }
        4 => {
            let n = (if over { 2_000 } else { 300 }) + g.rng.below(500) as usize;
            let cols: Vec<String> = (0..n).map(|i| format!("C{i} INT")).collect();
            format!(
                "CREATE STREAM {} (ID STRING KEY, {}) WITH (KAFKA_TOPIC='wide', PARTITIONS=1, VALUE_FORMAT='JSON');",
                g.fresh("S"),
                cols.join(", ")
            )
        }
        5 => {
            let n = (if over { 1_500 } else { 200 }) + g.rng.below(500) as usize;
            let whens: Vec<String> = (0..n)
                .map(|i| format!("WHEN ID = '{i}' THEN {i}"))
                .collect();
            format!(
                "SELECT CASE {} ELSE 0 END AS X FROM {name};",
                whens.join(" ")
            )
        }
        6 => {
            let n = 1_000 + g.rng.below(10_000) as usize;
            let items: Vec<String> = (0..n).map(|i| format!("'{i}'")).collect();
            format!("SELECT * FROM {name} WHERE ID IN ({});", items.join(", "))
        }
        _ => {
            let n = if over { (1 << 20) + 1 } else { 200_000 };
            format!("SELECT '{}' AS X FROM {name};", "x".repeat(n))
        }
    }
}
