//! The order a task processes one poll's records in, and the batches it
//! processes them as.
//!
//! Records of different partitions and sources are processed in record-time
//! order: the partition whose next record is oldest goes first, as Kafka
//! Streams chooses (at equal times a table's change before a stream's
//! record, so a stream record sees the table as of its own time; then the
//! order the partitions were read in), each partition in offset order. A
//! partition keeps the turn while its records are not later than every
//! other partition's next one.
//!
//! The merged order is cut into [`Segment`]s only where the source changes:
//! all the partitions of a source merge into one batch, so a query over one
//! source processes a whole poll as one Arrow batch whatever its partitions
//! (the operators process a batch's rows in order, so the outputs are those
//! of processing the records one by one).
//!
//! A partition that returned a full batch may hold more: once its records
//! are merged, the others' later records wait for the next poll (which
//! reads on from there), so a busy partition is never overtaken by a quiet
//! one and the query's stream time does not run ahead of records not read
//! yet (they would be late for their windows).

use std::collections::VecDeque;

use crate::connectors::Record;

/// One partition's records of this poll.
pub(crate) struct Queue {
    /// The task's source index (0: the query's source; i > 0: the right
    /// side of its (i-1)-th join).
    pub source: usize,
    pub partition: i32,
    /// The source is a table (its changes go first at equal times).
    pub is_table: bool,
    pub records: VecDeque<Record>,
    /// The fetch returned as many records as asked: the partition may
    /// hold more.
    pub truncated: bool,
}

/// Records of one source in processing order, and where each partition
/// they came from goes on.
#[derive(Debug, PartialEq)]
pub(crate) struct Segment {
    pub source: usize,
    pub records: Vec<Record>,
    /// The next offset of each partition with records in the segment.
    pub next: Vec<(i32, i64)>,
}

/// Merge the queues (see the module documentation).
pub(crate) fn merge(mut queues: Vec<Queue>) -> Vec<Segment> {
    let mut segments: Vec<Segment> = Vec::new();
    // The queue's next record's place in the order.
    let head = |q: &Queue| q.records.front().map(|r| (r.timestamp, !q.is_table));
    while let Some(pick) = (0..queues.len())
        .filter(|&i| !queues[i].records.is_empty())
        .min_by_key(|&i| head(&queues[i]))
    {
        let others_min = (0..queues.len())
            .filter(|&i| i != pick)
            .filter_map(|i| head(&queues[i]))
            .min();
        let queue = &mut queues[pick];
        let picked_stream = !queue.is_table;
        if segments.last().map(|s| s.source) != Some(queue.source) {
            segments.push(Segment {
                source: queue.source,
                records: Vec::new(),
                next: Vec::new(),
            });
        }
        let Some(segment) = segments.last_mut() else {
            break;
        };
        let mut taken = 0;
        let mut next = None;
        while let Some(r) = queue.records.front() {
            if taken > 0 && others_min.is_some_and(|m| (r.timestamp, picked_stream) > m) {
                break;
            }
            let Some(r) = queue.records.pop_front() else {
                break;
            };
            next = Some(r.offset + 1);
            segment.records.push(r);
            taken += 1;
        }
        if let Some(next) = next {
            match segment.next.iter_mut().find(|(p, _)| *p == queue.partition) {
                Some(entry) => entry.1 = next,
                None => segment.next.push((queue.partition, next)),
            }
        }
        if queue.truncated && queue.records.is_empty() {
            break;
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64, timestamp: i64) -> Record {
        Record {
            key: None,
            value: None,
            timestamp,
            headers: Vec::new(),
            partition,
            offset,
        }
    }

    /// A queue of (offset, time) records.
    fn queue(source: usize, partition: i32, is_table: bool, records: &[(i64, i64)]) -> Queue {
        Queue {
            source,
            partition,
            is_table,
            records: records
                .iter()
                .map(|&(o, t)| record(partition, o, t))
                .collect(),
            truncated: false,
        }
    }

    /// A segment as (source, [(partition, offset)], next offsets).
    type Shape = (usize, Vec<(i32, i64)>, Vec<(i32, i64)>);

    fn shape(segments: &[Segment]) -> Vec<Shape> {
        segments
            .iter()
            .map(|s| {
                (
                    s.source,
                    s.records.iter().map(|r| (r.partition, r.offset)).collect(),
                    s.next.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn partitions_of_one_source_merge_by_time_into_one_segment() {
        let segments = merge(vec![
            queue(0, 0, false, &[(10, 1), (11, 4), (12, 5)]),
            queue(0, 1, false, &[(20, 2), (21, 3), (22, 6)]),
        ]);
        assert_eq!(
            shape(&segments),
            [(
                0,
                vec![(0, 10), (1, 20), (1, 21), (0, 11), (0, 12), (1, 22)],
                vec![(0, 13), (1, 23)]
            )]
        );
    }

    #[test]
    fn sources_alternate_by_time_and_a_table_goes_first_at_equal_times() {
        let segments = merge(vec![
            queue(0, 0, false, &[(0, 1), (1, 5), (2, 9)]),
            queue(1, 0, true, &[(0, 5), (1, 7)]),
        ]);
        assert_eq!(
            shape(&segments),
            [
                (0, vec![(0, 0)], vec![(0, 1)]),
                (1, vec![(0, 0)], vec![(0, 1)]),
                (0, vec![(0, 1)], vec![(0, 2)]),
                (1, vec![(0, 1)], vec![(0, 2)]),
                (0, vec![(0, 2)], vec![(0, 3)]),
            ]
        );
    }

    #[test]
    fn a_full_partition_stops_the_merge_once_its_records_are_merged() {
        let mut busy = queue(0, 0, false, &[(0, 1), (1, 2)]);
        busy.truncated = true;
        let segments = merge(vec![busy, queue(0, 1, false, &[(5, 1), (6, 3), (7, 4)])]);
        // Partition 1's records at times 3 and 4 wait: partition 0 may
        // hold records before them.
        assert_eq!(
            shape(&segments),
            [(0, vec![(0, 0), (1, 5), (0, 1)], vec![(0, 2), (1, 6)])]
        );
    }

    #[test]
    fn nothing_read_is_no_segment() {
        assert!(merge(vec![queue(0, 0, false, &[])]).is_empty());
    }
}
