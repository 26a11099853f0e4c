//! Bounded concurrent maps: a [`Map`] is a `DashMap` that never holds more than its capacity,
//! with the policies its users need when it is full (start afresh, drop what has expired, or
//! refuse). [`Room`] is its length and capacity alone, for a bound over other containers.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::iter::Iter;
use dashmap::mapref::entry::{Entry as MapEntry, OccupiedEntry, VacantEntry};
use dashmap::mapref::one::{Ref, RefMut};

/// Places for at most `capacity` things: a place is claimed before its thing is added, so
/// concurrent additions can never take the count past the capacity together.
#[derive(Debug)]
pub(crate) struct Room {
    /// Things held plus places claimed for things not added yet. An atomic: claiming is one
    /// compare-and-swap, under no lock.
    len: AtomicUsize,
    capacity: usize,
}

impl Room {
    /// Room for `capacity` things, none taken.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            len: AtomicUsize::new(0),
            capacity,
        }
    }

    /// Things held, with places claimed for things being added.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// The most things there is room for.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether every place is taken.
    pub(crate) fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }

    /// Claims a place for one more thing, if there is one.
    pub(crate) fn claim(&self) -> bool {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |len| {
                (len < self.capacity).then_some(len + 1)
            })
            .is_ok()
    }

    /// Claims a place; when there is none, runs `clear` (which says how many places it freed)
    /// and claims again.
    pub(crate) fn claim_clearing(&self, clear: impl FnOnce() -> usize) -> bool {
        if self.claim() {
            return true;
        }
        self.give_back(clear());
        self.claim()
    }

    /// Frees `places` claimed before: their things were removed, or never added.
    pub(crate) fn give_back(&self, places: usize) {
        self.len.fetch_sub(places, Ordering::Relaxed);
    }
}

/// A concurrent map of at most `capacity` entries.
pub(crate) struct Map<K, V> {
    /// DashMap rather than a `Mutex<HashMap>`: operations on keys in different shards lock
    /// different shards, and a read takes a shard's read lock only.
    map: DashMap<K, V>,
    /// The entries, counted beside the map because `DashMap::len` locks every shard.
    room: Room,
}

impl<K: Eq + Hash, V> Map<K, V> {
    /// An empty map of at most `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: DashMap::new(),
            room: Room::new(capacity),
        }
    }

    /// Entries held, with places claimed for entries being inserted.
    pub(crate) fn len(&self) -> usize {
        self.room.len()
    }

    /// Whether the map holds as many entries as it may.
    pub(crate) fn is_full(&self) -> bool {
        self.room.is_full()
    }

    /// The most entries it may hold.
    pub(crate) fn capacity(&self) -> usize {
        self.room.capacity()
    }

    /// Entries as the map itself counts them, locking every shard: what tests check `len` by.
    #[cfg(test)]
    pub(crate) fn counted(&self) -> usize {
        self.map.len()
    }

    /// The entry of `key`, read-locking its shard while it is held.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    /// The entry of `key`, write-locking its shard while it is held.
    pub(crate) fn get_mut<Q>(&self, key: &Q) -> Option<RefMut<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key)
    }

    /// Every entry, each shard read-locked in turn.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        self.map.iter()
    }

    /// The entry of `key`, its shard write-locked until the entry is dropped.
    pub(crate) fn entry(&self, key: K) -> Entry<'_, K, V> {
        match self.map.entry(key) {
            MapEntry::Occupied(entry) => Entry::Occupied(Occupied {
                entry,
                room: &self.room,
            }),
            MapEntry::Vacant(entry) => Entry::Vacant(Vacant {
                entry,
                room: &self.room,
            }),
        }
    }

    /// Inserts `key`; a full map starts afresh (every entry dropped) first. False only if
    /// concurrent inserts filled it again meanwhile. Hold no entry of this map: clearing locks
    /// every shard.
    pub(crate) fn insert_or_clear(&self, key: K, value: V) -> bool {
        if !self.room.claim_clearing(|| self.remove_where(|_, _| false)) {
            return false;
        }
        self.insert_claimed(key, value);
        true
    }

    /// Inserts `key`; when the map is full, first drops the entries `keep` refuses. False, and
    /// nothing inserted, if it is still full. Hold no entry of this map: pruning locks every
    /// shard.
    pub(crate) fn insert_or_prune(
        &self,
        key: K,
        value: V,
        keep: impl FnMut(&K, &mut V) -> bool,
    ) -> bool {
        if !self.room.claim_clearing(|| self.remove_where(keep)) {
            return false;
        }
        self.insert_claimed(key, value);
        true
    }

    /// Keeps only the entries `keep` accepts (it may change them); returns how many went. Locks
    /// every shard in turn: hold no entry of this map.
    pub(crate) fn retain(&self, keep: impl FnMut(&K, &mut V) -> bool) -> usize {
        let removed = self.remove_where(keep);
        self.room.give_back(removed);
        removed
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        self.retain(|_, _| false);
    }

    /// Drops the entries `keep` refuses, without giving back their places; returns how many.
    fn remove_where(&self, mut keep: impl FnMut(&K, &mut V) -> bool) -> usize {
        let mut removed = 0;
        self.map.retain(|key, value| {
            let kept = keep(key, value);
            removed += usize::from(!kept);
            kept
        });
        removed
    }

    /// Inserts into a claimed place; a key inserted meanwhile already had one, which is kept.
    fn insert_claimed(&self, key: K, value: V) {
        if self.map.insert(key, value).is_some() {
            self.room.give_back(1);
        }
    }
}

impl<K: Eq + Hash + std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for Map<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("map", &self.map)
            .field("room", &self.room)
            .finish()
    }
}

/// A key's entry in a [`Map`], its shard write-locked while it is held.
pub(crate) enum Entry<'a, K, V> {
    /// The key is in the map.
    Occupied(Occupied<'a, K, V>),
    /// The key is not in the map.
    Vacant(Vacant<'a, K, V>),
}

/// An entry in a [`Map`].
pub(crate) struct Occupied<'a, K, V> {
    entry: OccupiedEntry<'a, K, V>,
    room: &'a Room,
}

impl<K: Eq + Hash, V> Occupied<'_, K, V> {
    /// The entry's value.
    pub(crate) fn get(&self) -> &V {
        self.entry.get()
    }

    /// Removes the entry, freeing its place.
    pub(crate) fn remove(self) -> V {
        let value = self.entry.remove();
        self.room.give_back(1);
        value
    }
}

/// A key missing from a [`Map`].
pub(crate) struct Vacant<'a, K, V> {
    entry: VacantEntry<'a, K, V>,
    room: &'a Room,
}

impl<'a, K: Eq + Hash, V> Vacant<'a, K, V> {
    /// A place for the key, if the map has room: the value may then be made (the shard stays
    /// locked, so no one else makes it meanwhile) and inserted.
    pub(crate) fn claim(self) -> Option<Claimed<'a, K, V>> {
        // Not `then_some`: a `Claimed` built eagerly would give back a place never claimed.
        self.room.claim().then(|| Claimed {
            entry: self.entry,
            place: Place(self.room),
        })
    }
}

/// A place claimed for a missing key; given back if dropped without [`Claimed::insert`].
pub(crate) struct Claimed<'a, K, V> {
    entry: VacantEntry<'a, K, V>,
    place: Place<'a>,
}

impl<'a, K: Eq + Hash, V> Claimed<'a, K, V> {
    /// Inserts the key with `value` into its place.
    pub(crate) fn insert(self, value: V) -> RefMut<'a, K, V> {
        std::mem::forget(self.place);
        self.entry.insert(value)
    }
}

/// One claimed place of a [`Room`], given back when dropped.
struct Place<'a>(&'a Room);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.give_back(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_or_clear_starts_afresh_when_full() {
        let map = Map::new(3);
        for n in 0..3 {
            assert!(map.insert_or_clear(n, n));
        }
        assert!(map.is_full());
        assert!(map.insert_or_clear(3, 3));
        assert_eq!((map.len(), map.map.len()), (1, 1));
        assert_eq!(map.get(&3).map(|v| *v), Some(3));
        assert!(map.insert_or_clear(3, 4), "a key inserted again");
        assert_eq!(map.len(), 1, "holds one place");
    }

    #[test]
    fn insert_or_prune_drops_what_keep_refuses_and_else_refuses() {
        let map = Map::new(3);
        for n in 0..3 {
            assert!(map.insert_or_prune(n, n, |_, _| true));
        }
        assert!(!map.insert_or_prune(9, 9, |_, _| true), "nothing to drop");
        assert!(map.get(&9).is_none());
        assert!(map.insert_or_prune(9, 9, |&k, _| k != 1));
        assert!(map.get(&1).is_none() && map.get(&9).is_some());
        assert_eq!((map.len(), map.map.len()), (3, 3));
    }

    #[test]
    fn a_claimed_place_is_kept_by_an_insert_and_given_back_otherwise() {
        let map = Map::new(1);
        if let Entry::Vacant(vacant) = map.entry("a") {
            let claimed = vacant.claim();
            assert!(claimed.is_some());
            assert_eq!(map.len(), 1, "claimed");
        }
        assert_eq!(map.len(), 0, "dropped: given back");
        if let Entry::Vacant(vacant) = map.entry("a")
            && let Some(claimed) = vacant.claim()
        {
            *claimed.insert(1) += 1;
        }
        assert_eq!(map.get("a").map(|v| *v), Some(2));
        if let Entry::Vacant(vacant) = map.entry("b") {
            assert!(vacant.claim().is_none(), "full");
        }
        if let Entry::Occupied(occupied) = map.entry("a") {
            assert_eq!(*occupied.get(), 2);
            assert_eq!(occupied.remove(), 2);
        }
        assert_eq!((map.len(), map.map.len()), (0, 0));
    }

    #[test]
    fn retain_and_clear_free_the_places_of_what_they_drop() {
        let map = Map::new(4);
        for n in 0..4 {
            map.insert_or_clear(n, n);
        }
        assert_eq!(
            map.retain(|&k, v| k % 2 == 0 && {
                *v += 10;
                true
            }),
            2
        );
        assert_eq!(map.get(&2).map(|v| *v), Some(12));
        assert_eq!(map.len(), 2);
        map.clear();
        assert_eq!((map.len(), map.map.len()), (0, 0));
    }

    #[test]
    fn the_room_claims_up_to_its_capacity_and_clears_when_asked() {
        let room = Room::new(2);
        assert!(room.claim() && room.claim());
        assert!(!room.claim() && room.is_full());
        assert!(!room.claim_clearing(|| 0), "nothing freed");
        assert!(room.claim_clearing(|| 2));
        assert_eq!(room.len(), 1);
    }

    #[test]
    fn concurrent_inserts_never_take_a_map_past_its_capacity() {
        for _ in 0..20 {
            let map = Map::new(50);
            std::thread::scope(|scope| {
                for thread in 0..8u32 {
                    let map = &map;
                    scope.spawn(move || {
                        for n in 0..200u32 {
                            let key = thread * 1000 + n;
                            match n % 4 {
                                0 => {
                                    map.insert_or_clear(key, n);
                                }
                                1 => {
                                    map.insert_or_prune(key, n, |_, v| *v % 3 == 0);
                                }
                                2 => {
                                    if let Entry::Vacant(vacant) = map.entry(key)
                                        && let Some(claimed) = vacant.claim()
                                    {
                                        claimed.insert(n);
                                    }
                                }
                                _ => {
                                    map.retain(|_, v| *v % 5 != 0);
                                }
                            }
                            assert!(map.len() <= 50, "{}", map.len());
                        }
                    });
                }
            });
            assert!(map.map.len() <= 50, "{}", map.map.len());
            assert_eq!(map.len(), map.map.len(), "every place accounted for");
        }
    }
}
