//! Many rows as one parameter: a JSON array of objects, read back as a table by the
//! database (`flametree_rows`, migration 0014, on PostgreSQL, `json_each` on SQLite). A batch's
//! statement then has the same text whatever its size, so it is parsed and planned
//! once per connection. Statements with a placeholder per value had a text per row
//! count: PostgreSQL planned each anew (a 60-pair `OR` took it ~85 ms for a batch of
//! 1,000 ops), and SQLite prepared them again as they fell out of the statement cache.

use super::BACKEND;
use crate::store::Backend;

/// A subquery over the rows in parameter `$param`, with the named columns. `cols` are
/// (name, PostgreSQL type); SQLite takes the JSON values as they are.
pub(super) fn rowset(param: usize, cols: &[(&str, &str)]) -> String {
    match BACKEND {
        // `flametree_rows` (migration 0014) rather than `json_to_recordset`: its estimate
        // of one row makes the joins lookups by primary key, where 100 made PostgreSQL
        // read the whole table for every statement planned while it was small.
        Backend::Postgres => {
            let typed: Vec<String> = cols
                .iter()
                .map(|(n, t)| format!("(e->>'{n}')::{t} AS {n}"))
                .collect();
            format!(
                "(SELECT {} FROM flametree_rows(${param}::json) AS e)",
                typed.join(", ")
            )
        }
        Backend::Sqlite => {
            let picked: Vec<String> = cols
                .iter()
                .map(|(n, _)| format!("value->>'{n}' AS {n}"))
                .collect();
            format!("(SELECT {} FROM json_each(${param}))", picked.join(", "))
        }
    }
}

/// `column` is one of the ids in parameter `$param` (a JSON array of numbers). On
/// PostgreSQL as `= ANY (ARRAY(…))`, which it looks up in the column's index; `IN
/// (SELECT … FROM json_array_elements …)` it planned as a scan of the whole table
/// joined to the list (1,000 rows read for a lookup of one connection's agents).
pub(super) fn id_in(column: &str, param: usize) -> String {
    match BACKEND {
        Backend::Postgres => format!(
            "{column} = ANY (ARRAY(SELECT json_array_elements_text(${param}::json)::bigint))"
        ),
        Backend::Sqlite => format!("{column} IN (SELECT value FROM json_each(${param}))"),
    }
}

/// A timestamp column's value from milliseconds since the epoch (`expr`, a BIGINT).
pub(super) fn ts_from_ms(expr: &str) -> String {
    match BACKEND {
        Backend::Postgres => format!("(TIMESTAMPTZ 'epoch' + {expr} * INTERVAL '1 millisecond')"),
        Backend::Sqlite => expr.to_string(),
    }
}

/// The JSON text of `rows` (a parameter for `rowset`).
pub(super) fn json<T: serde::Serialize>(rows: &[T]) -> String {
    // Serializing plain structs of numbers and strings cannot fail.
    serde_json::to_string(rows).unwrap_or_else(|_| "[]".into())
}

/// `(connection_id, provider_id)` pairs as rows `c`, `k`.
#[derive(serde::Serialize)]
pub(super) struct Pair<'a> {
    pub c: i64,
    pub k: &'a str,
}

pub(super) const PAIR_COLUMNS: &[(&str, &str)] = &[("c", "bigint"), ("k", "text")];

/// The statement's text, built once per call site and backend.
macro_rules! fixed_sql {
    ($build:expr) => {{
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| $build);
        sqlx::AssertSqlSafe(SQL.as_str())
    }};
}
pub(super) use fixed_sql;
