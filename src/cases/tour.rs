//! What to try on each case study: the pull and push queries the demo
//! prints and the README walks through.

use super::Case;

/// One query to try, and what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub what: &'static str,
    pub sql: &'static str,
}

const fn step(what: &'static str, sql: &'static str) -> Step {
    Step { what, sql }
}

/// The queries to try on a case, in the order to try them.
pub fn tour(case: Case) -> &'static [Step] {
    match case {
        Case::MovieFlix => MOVIEFLIX,
        Case::GetTaxi => GETTAXI,
        Case::Social => SOCIAL,
        Case::MyBank => MYBANK,
        Case::Logs => LOGS,
    }
}

const MOVIEFLIX: &[Step] = &[
    step(
        "Resume points: where viewers left their shows, latest first",
        "SELECT user_id, show_id, position_ms, finished FROM resume_points ORDER BY last_seen_ts DESC LIMIT 5",
    ),
    step(
        "Live profiles: watch time, completion, heartbeats per genre",
        "SELECT user_id, watch_time_ms, shows_started, completion_ratio, genre_heartbeats FROM user_profiles ORDER BY watch_time_ms DESC LIMIT 5",
    ),
    step(
        "Recommendations: well-completed shows of the user's favourite genre not started yet",
        "SELECT user_id, genre, show_ids FROM recommendations ORDER BY user_id LIMIT 5",
    ),
    step(
        "Heartbeats joined with the catalog as they arrive (a push query)",
        "SELECT user_id, title, genre, position_ms FROM show_views EMIT CHANGES LIMIT 5",
    ),
    step(
        "Every heartbeat in the analytics store (Parquet files, per hour)",
        "SELECT dt, hour, COUNT(*) AS heartbeats FROM show_position_archive GROUP BY dt, hour",
    ),
];

const GETTAXI: &[Step] = &[
    step(
        "Where taxis are now",
        "SELECT taxi_id, lat, lon, region, status FROM taxi_locations ORDER BY taxi_id LIMIT 5",
    ),
    step(
        "Surge pricing per region over the last 5 minutes",
        "SELECT region, WINDOWSTART, waiting_users, free_taxis, surge_multiplier FROM surge_pricing ORDER BY WINDOWSTART DESC, surge_multiplier DESC LIMIT 5",
    ),
    step(
        "The nearest free taxi for waiting users, per minute",
        "SELECT user_id, WINDOWSTART, nearest_km, taxis_nearby FROM nearest_taxi ORDER BY WINDOWSTART DESC, nearest_km LIMIT 5",
    ),
    step(
        "Surge changes as they happen (a push query)",
        "SELECT region, waiting_users, free_taxis, surge_multiplier FROM surge_pricing EMIT CHANGES LIMIT 5",
    ),
    step(
        "Taxi positions in the analytics store, for cost computation",
        "SELECT dt, hour, COUNT(*) AS positions, COUNT(DISTINCT taxi_id) AS taxis FROM taxi_position_archive GROUP BY dt, hour",
    ),
];

const SOCIAL: &[Step] = &[
    step(
        "Live posts with their like and comment counts (deleted posts are gone)",
        "SELECT post_id, author_id, like_count, comment_count FROM posts_with_counts ORDER BY like_count DESC, post_id LIMIT 5",
    ),
    step(
        "Trending: posts with 50 or more likes and comments in the last hour",
        "SELECT post_id, WINDOWSTART, likes_last_hour, comments_last_hour, engagement FROM trending_posts ORDER BY engagement DESC LIMIT 5",
    ),
    step(
        "The live feed of counts (a push query)",
        "SELECT post_id, like_count, comment_count FROM posts_with_counts EMIT CHANGES LIMIT 5",
    ),
];

const MYBANK: &[Step] = &[
    step(
        "The alert threshold in force per user",
        "SELECT user_id, threshold, since_ts FROM user_thresholds ORDER BY user_id LIMIT 5",
    ),
    step(
        "Transactions unwrapped from the CDC envelope (a pull query over the stream)",
        "SELECT user_id, txn_id, amount, merchant FROM transactions LIMIT 5",
    ),
    step(
        "New transactions as they arrive (a push query; alerts: SELECT * FROM user_alerts EMIT CHANGES)",
        "SELECT user_id, txn_id, amount, merchant FROM transactions EMIT CHANGES LIMIT 3",
    ),
];

const LOGS: &[Step] = &[
    step(
        "Requests, errors and latency per service in the current minutes",
        "SELECT service, WINDOWSTART, requests, server_errors, avg_latency_ms, slowest_ms FROM service_metrics ORDER BY WINDOWSTART DESC, service LIMIT 6",
    ),
    step(
        "Requests so far per service (a pull query over the stream)",
        "SELECT service, COUNT(*) AS requests, MAX(latency_ms) AS max_ms FROM request_logs GROUP BY service ORDER BY service",
    ),
    step(
        "Every log line in the analytics store",
        "SELECT dt, hour, COUNT(*) AS lines FROM request_logs_archive GROUP BY dt, hour",
    ),
];
