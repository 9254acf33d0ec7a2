//! An in-memory cache of tree packs in front of the repository backend.
//!
//! kfguard opens repositories without rustic's disk cache (a backup job's pod has no lasting
//! disk), so every tree blob read is one ranged GET, made one at a time while a tree is walked:
//! an unchanged bucket backup read its parent's 565 trees at ~44 ms each. rustic_core flags the
//! reads of tree blobs as cacheable; this wrapper then fetches the whole pack once (tree packs
//! hold only trees, and are small) and serves every later tree read of that pack from memory,
//! as rustic's own cache does from disk. Data blobs pass straight through.

use std::sync::Arc;

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, OptionsBuilder, Weighter};
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};

/// Memory for cached tree packs; the least recently used ones are dropped beyond it.
const CAPACITY: u64 = 64 * 1024 * 1024;

#[derive(Clone)]
struct ByLength;

impl Weighter<Id, Bytes> for ByLength {
    fn weight(&self, _id: &Id, pack: &Bytes) -> u64 {
        pack.len() as u64
    }
}

/// A backend whose cacheable partial reads (tree blobs) come from whole packs kept in memory.
pub struct TreePacks {
    inner: Arc<dyn WriteBackend>,
    packs: Cache<Id, Bytes, ByLength>,
}

impl std::fmt::Debug for TreePacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreePacks")
            .field("location", &self.inner.location())
            .finish_non_exhaustive()
    }
}

impl TreePacks {
    pub fn new(inner: Arc<dyn WriteBackend>) -> Self {
        // One shard: a pack larger than a shard's share of the capacity would never be kept.
        let options = OptionsBuilder::new()
            .shards(1)
            .estimated_items_capacity(256)
            .weight_capacity(CAPACITY)
            .build()
            .expect("cache options are complete");
        Self {
            inner,
            packs: Cache::with_options(
                options,
                ByLength,
                DefaultHashBuilder::default(),
                Default::default(),
            ),
        }
    }
}

impl ReadBackend for TreePacks {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        self.inner.list_with_size(tpe)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        self.inner.read_full(tpe, id)
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        if !cacheable || tpe != FileType::Pack {
            return self.inner.read_partial(tpe, id, cacheable, offset, length);
        }
        // Concurrent readers of one pack wait for a single fetch.
        let pack = self
            .packs
            .get_or_insert_with(id, || self.inner.read_full(tpe, id))?;
        let (start, end) = (offset as usize, offset as usize + length as usize);
        if end > pack.len() {
            return Err(RusticError::new(
                ErrorKind::Backend,
                "pack `{id}` holds {size} bytes, fewer than a blob at {offset}+{length} needs",
            )
            .attach_context("id", id.to_hex().to_string())
            .attach_context("size", pack.len().to_string())
            .attach_context("offset", offset.to_string())
            .attach_context("length", length.to_string()));
        }
        Ok(pack.slice(start..end))
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.inner.warmup_path(tpe, id)
    }

    fn needs_warm_up(&self) -> bool {
        self.inner.needs_warm_up()
    }

    fn warm_up(&self, tpe: FileType, id: &Id) -> RusticResult<()> {
        self.inner.warm_up(tpe, id)
    }
}

impl WriteBackend for TreePacks {
    fn create(&self) -> RusticResult<()> {
        self.inner.create()
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        self.inner.write_bytes(tpe, id, cacheable, content)
    }

    fn remove(&self, tpe: FileType, id: &Id, cacheable: bool) -> RusticResult<()> {
        if tpe == FileType::Pack {
            self.packs.remove(id);
        }
        self.inner.remove(tpe, id, cacheable)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;

    /// A backend holding one pack, counting the reads that reach it.
    #[derive(Default)]
    struct Counting {
        pack: Mutex<Option<Bytes>>,
        full: AtomicUsize,
        partial: AtomicUsize,
    }

    impl ReadBackend for Counting {
        fn location(&self) -> String {
            "counting".into()
        }
        fn list_with_size(&self, _: FileType) -> RusticResult<Vec<(Id, u32)>> {
            Ok(Vec::new())
        }
        fn read_full(&self, _: FileType, _: &Id) -> RusticResult<Bytes> {
            self.full.fetch_add(1, Ordering::SeqCst);
            Ok(self.pack.lock().unwrap().clone().unwrap_or_default())
        }
        fn read_partial(
            &self,
            _: FileType,
            _: &Id,
            _: bool,
            offset: u32,
            length: u32,
        ) -> RusticResult<Bytes> {
            self.partial.fetch_add(1, Ordering::SeqCst);
            let pack = self.pack.lock().unwrap().clone().unwrap_or_default();
            Ok(pack.slice(offset as usize..(offset + length) as usize))
        }
        fn warmup_path(&self, _: FileType, _: &Id) -> String {
            String::new()
        }
    }

    impl WriteBackend for Counting {
        fn write_bytes(&self, _: FileType, _: &Id, _: bool, _: BytesList) -> RusticResult<()> {
            Ok(())
        }
        fn remove(&self, _: FileType, _: &Id, _: bool) -> RusticResult<()> {
            Ok(())
        }
    }

    #[test]
    fn tree_reads_of_one_pack_fetch_it_once_and_data_reads_pass_through() {
        let inner = Arc::new(Counting::default());
        *inner.pack.lock().unwrap() = Some(Bytes::from_static(b"0123456789"));
        let packs = TreePacks::new(inner.clone());
        let id = Id::default();
        for (offset, length, want) in [(0, 3, &b"012"[..]), (5, 5, b"56789"), (2, 2, b"23")] {
            let got = packs
                .read_partial(FileType::Pack, &id, true, offset, length)
                .unwrap();
            assert_eq!(&got[..], want);
        }
        assert_eq!(inner.full.load(Ordering::SeqCst), 1);
        assert!(packs.read_partial(FileType::Pack, &id, true, 8, 5).is_err());

        let data = packs
            .read_partial(FileType::Pack, &id, false, 1, 2)
            .unwrap();
        assert_eq!(&data[..], b"12");
        assert_eq!(inner.partial.load(Ordering::SeqCst), 1);

        // A removed pack is never served from memory again.
        packs.remove(FileType::Pack, &id, true).unwrap();
        packs.read_partial(FileType::Pack, &id, true, 0, 1).unwrap();
        assert_eq!(inner.full.load(Ordering::SeqCst), 2);
    }
}
