//! GEO_DISTANCE(lat1, lon1, lat2, lon2[, unit]): great-circle distance by the
//! haversine formula, on a sphere of ksqlDB's radius: 6371 km or 3959 miles.
//!
//! Units: `KM` (default; also `kilometer(s)`, `kilometre(s)`) or `MI` (also
//! `mile(s)`), case-insensitive and trimmed; an empty unit means km. An
//! unknown unit or a latitude outside [-90, 90] / longitude outside
//! [-180, 180] gives NULL (ksqlDB raises a function error).

use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{ret_f64, Arg::*, Call, Params, RowUdf};

pub(super) const CATALOG: &[(&str, &str)] = &[(
    "GEO_DISTANCE",
    "Great-circle distance between two lat/lon points, in KM (default) or MI",
)];

const EARTH_RADIUS_KM: f64 = 6371.0;
const EARTH_RADIUS_MILES: f64 = 3959.0;

pub(super) fn udfs() -> Vec<ScalarUDF> {
    vec![RowUdf::new(
        "geo_distance",
        Params::Fixed(&[&[Dbl, Dbl, Dbl, Dbl], &[Dbl, Dbl, Dbl, Dbl, Str]]),
        ret_f64,
        geo_distance,
    )
    .build()]
}

fn radius(unit: &str) -> Option<f64> {
    match unit.trim().to_lowercase().as_str() {
        "" | "km" | "kilometer" | "kilometers" | "kilometre" | "kilometres" => {
            Some(EARTH_RADIUS_KM)
        }
        "mi" | "mile" | "miles" => Some(EARTH_RADIUS_MILES),
        _ => None,
    }
}

/// Haversine distance in units of `radius`.
pub(super) fn haversine(lat1: f64, lon1: f64, lat2: f64, lon2: f64, radius: f64) -> f64 {
    let hav = |x: f64| (x / 2.0).sin().powi(2);
    let a = hav((lat2 - lat1).to_radians())
        + hav((lon2 - lon1).to_radians()) * lat1.to_radians().cos() * lat2.to_radians().cos();
    2.0 * a.sqrt().asin() * radius
}

fn geo_distance(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(lat1), Some(lon1), Some(lat2), Some(lon2)) = (c.f(0), c.f(1), c.f(2), c.f(3)) else {
        return c.null();
    };
    let unit = if c.len() > 4 { c.s(4) } else { Some("km") };
    let Some(r) = unit.and_then(radius) else {
        return c.null();
    };
    let lat_ok = |x: f64| (-90.0..=90.0).contains(&x);
    let lon_ok = |x: f64| (-180.0..=180.0).contains(&x);
    if !(lat_ok(lat1) && lat_ok(lat2) && lon_ok(lon1) && lon_ok(lon2)) {
        return c.null();
    }
    Ok(ScalarValue::Float64(Some(haversine(
        lat1, lon1, lat2, lon2, r,
    ))))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::q1;

    #[tokio::test]
    async fn distances() {
        // ksqlDB docs example: 37.4439, -122.1663 to 51.5257, -0.1703.
        assert_eq!(
            q1("SELECT round(geo_distance(37.4439, -122.1663, 51.5257, -0.1703), 3), round(geo_distance(37.4439, -122.1663, 51.5257, -0.1703, 'MI'), 3)").await,
            "8631.89|5363.939"
        );
        assert_eq!(q1("SELECT geo_distance(0, 0, 0, 0), geo_distance(91, 0, 0, 0), geo_distance(0, 0, 0, 0, 'parsecs'), geo_distance(NULL, 0, 0, 0)").await, "0.0|NULL|NULL|NULL");
    }
}
