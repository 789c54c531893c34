//! The worker's block store: bounded in bytes, evicting cached partitions least recently used
//! first. Shuffle buckets are pinned: they are dropped only when their shuffle is released.

use std::collections::BTreeMap;

use crate::error::{TaskError, TaskErrorKind};
use crate::ids::BlockId;
use crate::message::Payload;

#[derive(Debug)]
struct Entry {
    payload: Payload,
    bytes: u64,
    pinned: bool,
    stamp: u64,
}

/// A bounded map from block ids to payloads.
#[derive(Debug)]
pub(crate) struct BlockStore {
    limit_bytes: u64,
    used_bytes: u64,
    pinned_bytes: u64,
    blocks: BTreeMap<BlockId, Entry>,
    /// Unpinned blocks by last use.
    lru: BTreeMap<u64, BlockId>,
    clock: u64,
}

impl BlockStore {
    pub(crate) fn new(limit_bytes: u64) -> BlockStore {
        BlockStore {
            limit_bytes,
            used_bytes: 0,
            pinned_bytes: 0,
            blocks: BTreeMap::new(),
            lru: BTreeMap::new(),
            clock: 0,
        }
    }

    pub(crate) fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// The ids of the blocks held, in order.
    pub(crate) fn ids(&self) -> Vec<BlockId> {
        self.blocks.keys().copied().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    /// The block's payload, marking it as recently used.
    pub(crate) fn get(&mut self, id: BlockId) -> Option<Payload> {
        self.clock += 1;
        let entry = self.blocks.get_mut(&id)?;
        if !entry.pinned {
            self.lru.remove(&entry.stamp);
            self.lru.insert(self.clock, id);
        }
        entry.stamp = self.clock;
        Some(entry.payload.clone())
    }

    /// Stores a block, evicting unpinned blocks as needed. Returns the evicted block ids.
    pub(crate) fn insert(
        &mut self,
        id: BlockId,
        payload: Payload,
        bytes: u64,
        pinned: bool,
    ) -> Result<Vec<BlockId>, TaskError> {
        if bytes > self.limit_bytes {
            let kind = TaskErrorKind::BlockTooLarge { block: id, bytes, limit_bytes: self.limit_bytes };
            return Err(TaskError::new(kind, "raise the worker's block_store_bytes_max or use more partitions"));
        }
        // Only unpinned blocks can make room: if they cannot make enough, fail before evicting
        // anything, so a failed insert changes nothing.
        let replaced_pinned = self.blocks.get(&id).filter(|e| e.pinned).map_or(0, |e| e.bytes);
        let limit_bytes = self.limit_bytes;
        let full = |pinned_bytes: u64| {
            let kind = TaskErrorKind::StoreFull { block: id, pinned_bytes, limit_bytes };
            TaskError::new(kind, "raise the worker's block_store_bytes_max")
        };
        if self.pinned_bytes - replaced_pinned + bytes > self.limit_bytes {
            return Err(full(self.pinned_bytes));
        }
        self.remove(id);
        let mut evicted = Vec::new();
        while self.used_bytes + bytes > self.limit_bytes {
            let Some((_, victim)) = self.lru.pop_first() else {
                return Err(full(self.pinned_bytes));
            };
            if let Some(e) = self.blocks.remove(&victim) {
                self.used_bytes -= e.bytes;
            }
            evicted.push(victim);
        }
        self.clock += 1;
        if pinned {
            self.pinned_bytes += bytes;
        } else {
            self.lru.insert(self.clock, id);
        }
        self.used_bytes += bytes;
        self.blocks.insert(id, Entry { payload, bytes, pinned, stamp: self.clock });
        Ok(evicted)
    }

    /// Drops a block if present.
    pub(crate) fn remove(&mut self, id: BlockId) -> bool {
        let Some(e) = self.blocks.remove(&id) else {
            return false;
        };
        self.used_bytes -= e.bytes;
        if e.pinned {
            self.pinned_bytes -= e.bytes;
        } else {
            self.lru.remove(&e.stamp);
        }
        true
    }

    /// Drops every block for which `f` is true.
    pub(crate) fn remove_where(&mut self, f: impl Fn(&BlockId) -> bool) {
        let doomed: Vec<BlockId> = self.blocks.keys().filter(|b| f(b)).copied().collect();
        for id in doomed {
            self.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ids::{RddId, ShuffleId};

    fn rdd(p: u32) -> BlockId {
        BlockId::Rdd { rdd: RddId::program(1), partition: p }
    }

    fn payload() -> Payload {
        Payload::local(Arc::new(0u8))
    }

    #[test]
    fn evicts_least_recently_used_unpinned_first() {
        let mut s = BlockStore::new(100);
        s.insert(rdd(0), payload(), 40, false).unwrap();
        s.insert(rdd(1), payload(), 40, false).unwrap();
        assert!(s.get(rdd(0)).is_some()); // rdd(1) is now the oldest
        assert_eq!(s.insert(rdd(2), payload(), 40, false).unwrap(), vec![rdd(1)]);
        assert_eq!(s.used_bytes(), 80);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn pinned_blocks_are_never_evicted() {
        let shuffle = BlockId::Shuffle { shuffle: ShuffleId::program(0), map: 0, reduce: 0 };
        let mut s = BlockStore::new(100);
        s.insert(shuffle, payload(), 70, true).unwrap();
        s.insert(rdd(0), payload(), 30, false).unwrap();
        assert_eq!(s.insert(rdd(1), payload(), 30, false).unwrap(), vec![rdd(0)]);
        let err = s.insert(rdd(2), payload(), 31, false).unwrap_err();
        assert!(matches!(err.kind, TaskErrorKind::StoreFull { pinned_bytes: 70, limit_bytes: 100, .. }), "{err}");
        let err = s.insert(rdd(3), payload(), 101, false).unwrap_err();
        assert!(matches!(err.kind, TaskErrorKind::BlockTooLarge { bytes: 101, .. }), "{err}");
        s.remove_where(|b| matches!(b, BlockId::Shuffle { .. }));
        assert_eq!(s.used_bytes(), 30, "a failed insert evicts nothing");
        assert!(s.get(rdd(1)).is_some());
    }

    #[test]
    fn replacing_a_block_keeps_accounting_right() {
        let mut s = BlockStore::new(100);
        s.insert(rdd(0), payload(), 60, false).unwrap();
        s.insert(rdd(0), payload(), 70, false).unwrap();
        assert_eq!(s.used_bytes(), 70);
        assert!(s.remove(rdd(0)));
        assert!(!s.remove(rdd(0)));
        assert_eq!(s.used_bytes(), 0);
    }
}
