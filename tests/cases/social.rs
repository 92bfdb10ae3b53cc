//! MySocialMedia end to end: 40 s of posts, likes and comments (about 40
//! events/s: posts created, edited and deleted, bursts of likes on viral
//! posts, unlikes, comments and their deletions), then every derived table
//! and stream of `queries/social.sql` checked exactly against a model
//! computed here from the generated events: through pull queries over the
//! Postgres protocol, through the output topics, and the Parquet files of
//! the `posts` archive.
//!
//! `trending_posts` keeps the SQL's threshold (50 likes and comments in a
//! 1-hour window): the viral posts of a 40 s run pass it, the others do not.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sluice::cases::{Case, Event};

use super::movieflix::{
    assert_archived, int_of, settle, settle_sorted, settle_table, sort_json, str_of,
    stream_records, text_key,
};
use super::{text, Row, Run};

const SEED: u64 = 7;
const RATE: f64 = 40.0;
const DURATION: std::time::Duration = std::time::Duration::from_secs(40);

/// `HAVING COUNT(*) >= 50` of trending_posts.
const TRENDING: i64 = 50;
const HOUR_MS: i64 = 3_600_000;
const ADVANCE_MS: i64 = 300_000;

#[derive(Debug, Default, Clone)]
struct Post {
    author: String,
    content: Option<String>,
    created_ts: i64,
    updated_ts: i64,
    deleted: bool,
}

/// Likes and comments of one post in one window.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    likes: i64,
    comments: i64,
}

#[derive(Default)]
struct Model {
    posts: BTreeMap<String, Post>,
    likes: BTreeMap<String, i64>,
    comments: BTreeMap<String, i64>,
    /// (post, user, kind, time) of each like and comment.
    engagement: Vec<(String, String, &'static str, i64)>,
    /// (post, window start) → counts, all windows (HAVING not applied).
    windows: BTreeMap<(String, i64), Window>,
}

impl Model {
    fn new(events: &[Event]) -> Model {
        let mut m = Model::default();
        for e in events {
            let v = &e.value;
            let key = e.key.clone().expect("a key");
            let action = str_of(v, "action");
            let ts = int_of(v, "event_ts");
            match e.topic {
                "posts" => {
                    let post = m.posts.entry(str_of(v, "post_id")).or_default();
                    if post.author.is_empty() {
                        post.created_ts = ts;
                    }
                    post.author = key;
                    if let Some(c) = v["content"].as_str() {
                        post.content = Some(c.to_string());
                    }
                    post.updated_ts = ts;
                    post.deleted |= action == "deleted";
                }
                "likes" => {
                    *m.likes.entry(key.clone()).or_default() += match action.as_str() {
                        "liked" => 1,
                        "unliked" => -1,
                        _ => 0,
                    };
                    if action == "liked" {
                        m.engage(key, str_of(v, "user_id"), "like", ts);
                    }
                }
                "comments" => {
                    *m.comments.entry(key.clone()).or_default() += match action.as_str() {
                        "commented" => 1,
                        "deleted" => -1,
                        _ => 0,
                    };
                    if action == "commented" {
                        m.engage(key, str_of(v, "user_id"), "comment", ts);
                    }
                }
                other => panic!("unexpected topic {other}"),
            }
        }
        m
    }

    /// A like or a comment: into the engagement stream and into every
    /// hopping window that holds its time (start a multiple of 5 minutes,
    /// start <= t < start + 1 hour).
    fn engage(&mut self, post: String, user: String, kind: &'static str, ts: i64) {
        let mut start = ts - ts.rem_euclid(ADVANCE_MS);
        while start > ts - HOUR_MS {
            let w = self.windows.entry((post.clone(), start)).or_default();
            match kind {
                "like" => w.likes += 1,
                _ => w.comments += 1,
            }
            start -= ADVANCE_MS;
        }
        self.engagement.push((post, user, kind, ts));
    }

    fn live(&self) -> impl Iterator<Item = (&String, &Post)> {
        self.posts.iter().filter(|(_, p)| !p.deleted)
    }

    fn trending(&self) -> impl Iterator<Item = (&(String, i64), &Window)> {
        self.windows
            .iter()
            .filter(|(_, w)| w.likes + w.comments >= TRENDING)
    }
}

#[test]
fn social_end_to_end() {
    let run = Run::start(Case::Social);
    let params = Run::params(SEED, RATE, DURATION);
    let events = run.generate(&params);
    let m = Model::new(&events);
    // The run is meaningful: deleted posts, unlikes, deleted comments, trends.
    assert!(m.posts.values().filter(|p| p.deleted).count() >= 3);
    assert!(m.likes.len() >= 20 && m.comments.len() >= 20);
    let trending_posts: std::collections::BTreeSet<&String> =
        m.trending().map(|((p, _), _)| p).collect();
    assert!(
        trending_posts.len() >= 3,
        "trending posts: {trending_posts:?}"
    );

    // live_posts
    let live_rows: Vec<Row> = m
        .live()
        .map(|(id, p)| {
            vec![
                text(id),
                text(&p.author),
                p.content.clone(),
                text(p.created_ts),
                text(p.updated_ts),
            ]
        })
        .collect();
    settle_sorted(
        &run,
        "SELECT post_id, author_id, content, created_ts, updated_ts FROM live_posts",
        live_rows,
    );
    let live_topic: BTreeMap<String, Value> = m
        .live()
        .map(|(id, p)| {
            (
                id.clone(),
                json!({
                    "AUTHOR_ID": p.author,
                    "CONTENT": p.content,
                    "CREATED_TS": p.created_ts,
                    "UPDATED_TS": p.updated_ts,
                }),
            )
        })
        .collect();
    settle_table(&run, "LIVE_POSTS", text_key, &live_topic);

    // post_likes and post_comments: net counts, deleted posts included.
    for (table, counts, column) in [
        ("post_likes", &m.likes, "like_count"),
        ("post_comments", &m.comments, "comment_count"),
    ] {
        settle_sorted(
            &run,
            &format!("SELECT post_id, {column} FROM {table}"),
            counts
                .iter()
                .map(|(id, n)| vec![text(id), text(n)])
                .collect(),
        );
        let topic: BTreeMap<String, Value> = counts
            .iter()
            .map(|(id, n)| (id.clone(), json!({ column.to_uppercase(): n })))
            .collect();
        settle_table(&run, &table.to_uppercase(), text_key, &topic);
    }

    // posts_with_counts: live posts only, 0 without likes or comments.
    let counted = |id: &String, p: &Post| {
        (
            p.clone(),
            m.likes.get(id).copied().unwrap_or(0),
            m.comments.get(id).copied().unwrap_or(0),
        )
    };
    settle_sorted(
        &run,
        "SELECT post_id, author_id, content, created_ts, like_count, comment_count \
         FROM posts_with_counts",
        m.live()
            .map(|(id, p)| {
                let (p, likes, comments) = counted(id, p);
                vec![
                    text(id),
                    text(p.author),
                    p.content,
                    text(p.created_ts),
                    text(likes),
                    text(comments),
                ]
            })
            .collect(),
    );
    let (id, p) = m
        .live()
        .max_by_key(|(id, _)| m.likes.get(*id).copied().unwrap_or(0))
        .expect("a live post");
    let (p, likes, comments) = counted(id, p);
    assert_eq!(
        run.query(&format!(
            "SELECT author_id, like_count, comment_count FROM posts_with_counts WHERE post_id = '{id}'"
        )),
        vec![vec![text(&p.author), text(likes), text(comments)]]
    );
    let with_counts_topic: BTreeMap<String, Value> = m
        .live()
        .map(|(id, p)| {
            let (p, likes, comments) = counted(id, p);
            (
                id.clone(),
                json!({
                    "AUTHOR_ID": p.author,
                    "CONTENT": p.content,
                    "CREATED_TS": p.created_ts,
                    "LIKE_COUNT": likes,
                    "COMMENT_COUNT": comments,
                }),
            )
        })
        .collect();
    settle_table(&run, "POSTS_WITH_COUNTS", text_key, &with_counts_topic);

    // engagement: every like and comment, once.
    settle_sorted(
        &run,
        "SELECT post_id, user_id, kind FROM engagement",
        m.engagement
            .iter()
            .map(|(post, user, kind, _)| vec![text(post), text(user), text(kind)])
            .collect(),
    );
    let mut expected: Vec<(String, Value, i64)> = m
        .engagement
        .iter()
        .map(|(post, user, kind, ts)| (post.clone(), json!({"USER_ID": user, "KIND": kind}), *ts))
        .collect();
    sort_json(&mut expected);
    settle(
        "the ENGAGEMENT topic",
        || stream_records(&run, "ENGAGEMENT"),
        &expected,
    );

    // trending_posts: the windows with at least 50 likes and comments.
    settle_sorted(
        &run,
        "SELECT post_id, WINDOWSTART, WINDOWEND, likes_last_hour, comments_last_hour, engagement \
         FROM trending_posts",
        m.trending()
            .map(|((post, start), w)| {
                vec![
                    text(post),
                    text(start),
                    text(start + HOUR_MS),
                    text(w.likes),
                    text(w.comments),
                    text(w.likes + w.comments),
                ]
            })
            .collect(),
    );
    let ((post, _), _) = m.trending().next().expect("a trending post");
    let windows: Vec<Row> = m
        .trending()
        .filter(|((p, _), _)| p == post)
        .map(|((_, start), w)| vec![text(start), text(w.likes + w.comments)])
        .collect();
    assert_eq!(
        run.query(&format!(
            "SELECT WINDOWSTART, engagement FROM trending_posts WHERE post_id = '{post}' \
             ORDER BY WINDOWSTART"
        )),
        windows
    );
    let trending_topic: BTreeMap<String, Value> = m
        .trending()
        .map(|((post, start), w)| {
            (
                format!("{post}@{start}"),
                json!({
                    "LIKES_LAST_HOUR": w.likes,
                    "COMMENTS_LAST_HOUR": w.comments,
                    "ENGAGEMENT": w.likes + w.comments,
                }),
            )
        })
        .collect();
    settle_table(&run, "TRENDING_POSTS", windowed_key, &trending_topic);

    // The analytics store: every post event exactly once.
    assert_archived(
        &run,
        "posts",
        &["USER_ID", "POST_ID", "ACTION", "CONTENT", "EVENT_TS"],
        events
            .iter()
            .filter(|e| e.topic == "posts")
            .map(|e| {
                let v = &e.value;
                vec![
                    e.key.clone(),
                    Some(str_of(v, "post_id")),
                    Some(str_of(v, "action")),
                    v["content"].as_str().map(str::to_string),
                    text(int_of(v, "event_ts")),
                    text(e.timestamp),
                ]
            })
            .collect(),
    );
}

/// A hopping window's key: the KAFKA-format post_id, then the window start
/// (8 bytes, big-endian), as `post_id@start`.
fn windowed_key(key: Option<&[u8]>) -> String {
    let key = key.expect("a key");
    assert!(key.len() > 8, "a windowed key: {key:?}");
    let (post, start) = key.split_at(key.len() - 8);
    let start = i64::from_be_bytes(start.try_into().expect("8 bytes"));
    format!("{}@{start}", String::from_utf8_lossy(post))
}
