//! Client authentication: bearer keys held as SHA-256 digests.
//!
//! The keys are `[[keys]]` from the file and the keys kept in the ledger's database (made
//! through the admin API), in one table swapped whole when the database's keys change
//! ([`KeyStore::sync`]): a request reads it without a lock. Secrets are hashed once and
//! dropped; a request's token is hashed and looked up by its digest. The lookup's timing
//! depends only on the digest, which a caller cannot steer toward a stored one without the
//! secret, so it reveals nothing about any key. Trial keys carry an expiry. A key's limits
//! (rates, parallelism, budget, models) are not checked here but once the request's body is
//! parsed (`crate::state`), where its model and size are known.
//!
//! Each key has a slot, its index in the limit stores: `[[keys]]` in order, then database
//! keys as they are first seen; a slot is never reused for another name.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::models;
use crate::catalog::Catalog;
use crate::config::{KeyConfig, KeyPolicy};
use crate::errors::ApiError;
use crate::ledger::keys::StoredKey;
use crate::state::Store;

/// Where a key is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `[[keys]]`: edited in the file, not through the admin API.
    File,
    /// The ledger's database (the admin API, `gatewayz keys`).
    Database,
}

/// A client key as requests see it.
#[derive(Debug)]
pub struct ClientKey {
    /// Its index in the limit stores.
    pub slot: usize,
    pub name: Arc<str>,
    pub team: Option<Arc<str>>,
    /// `None`: every model; else its `/v1/models` body and its models by model index.
    pub models: Option<(Bytes, Box<[bool]>)>,
    pub policy: KeyPolicy,
    pub origin: Origin,
    digest: [u8; 32],
}

/// Who made a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key, or `None` when auth is off (no keys: loopback only).
    pub key: Option<Arc<ClientKey>>,
}

/// A digest is uniformly random already: its first eight bytes are its hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
}

type ByDigest = HashMap<[u8; 32], Arc<ClientKey>, BuildHasherDefault<DigestHasher>>;

/// The keys in force.
#[derive(Default)]
struct Table {
    by_digest: ByDigest,
    /// File keys first (in order), then database keys by name.
    listed: Vec<Arc<ClientKey>>,
}

/// What [`KeyStore::sync`] remembers between two reads.
struct Slots {
    /// Every name ever seen, with its slot.
    by_name: HashMap<String, usize>,
    next: usize,
    file: Vec<Arc<ClientKey>>,
    /// The database keys in force, by name.
    database: HashMap<String, Arc<ClientKey>>,
    /// Database keys (policy, digest) hidden by a file key of the same name: they join if
    /// the file drops it.
    shadowed: Vec<(KeyPolicy, [u8; 32])>,
}

impl Slots {
    /// The slot `name` ever had, or the next one.
    fn slot_of(&mut self, name: &str) -> usize {
        if let Some(slot) = self.by_name.get(name) {
            return *slot;
        }
        let slot = self.next;
        self.next += 1;
        self.by_name.insert(name.to_owned(), slot);
        slot
    }
}

/// What a sync changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

/// The client keys.
pub struct KeyStore {
    table: ArcSwap<Table>,
    slots: Mutex<Slots>,
    /// What keys' model lists resolve against (a reload swaps it).
    catalog: ArcSwap<Catalog>,
    /// Unix time the gateway started (the models' `created`).
    created: u64,
}

impl KeyStore {
    /// The file's keys, in slots `0..keys.len()`.
    pub fn new(keys: &[KeyConfig], catalog: Arc<Catalog>, created: u64) -> Self {
        let mut store = Self {
            table: ArcSwap::from_pointee(Table::default()),
            slots: Mutex::new(Slots {
                by_name: HashMap::new(),
                next: keys.len(),
                file: Vec::new(),
                database: HashMap::new(),
                shadowed: Vec::new(),
            }),
            catalog: ArcSwap::new(catalog),
            created,
        };
        let file: Vec<Arc<ClientKey>> = keys
            .iter()
            .enumerate()
            .map(|(slot, k)| {
                Arc::new(store.client_key(slot, k.policy(), digest(k.key.as_bytes()), Origin::File))
            })
            .collect();
        let slots = store
            .slots
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        slots.by_name = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.name.clone(), i))
            .collect();
        slots.file = file.clone();
        store.table = ArcSwap::from_pointee(Table {
            by_digest: file.iter().map(|k| (k.digest, k.clone())).collect(),
            listed: file,
        });
        store
    }

    fn client_key(
        &self,
        slot: usize,
        policy: KeyPolicy,
        digest: [u8; 32],
        origin: Origin,
    ) -> ClientKey {
        let models = policy.models.as_ref().map(|ids| {
            let allowed = |name: &str| ids.iter().any(|id| id == name);
            models::listing(&self.catalog.load(), &allowed, self.created)
        });
        ClientKey {
            slot,
            name: Arc::from(policy.name.as_str()),
            team: policy.team.as_deref().map(Arc::from),
            models,
            policy,
            origin,
            digest,
        }
    }

    /// Makes the database's keys the ones in force beside the file's: new keys get the next
    /// slots and their limiters, changed ones new limiters, and keys gone from the table
    /// stop authenticating. A database key named like a file key is ignored (the file wins).
    pub fn sync(&self, stored: &[StoredKey], limits: &Store) -> Changes {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let now = SystemTime::now();
        let mut changes = Changes::default();
        let mut database = HashMap::with_capacity(stored.len());
        slots.shadowed.clear();
        for key in stored {
            let name = &key.policy.name;
            if slots.file.iter().any(|f| *f.name == **name) {
                tracing::warn!(
                    key = %name,
                    "a key in the ledger's database has the name of a key in the configuration \
                     file; the file's is used"
                );
                slots.shadowed.push((key.policy.clone(), key.digest));
                continue;
            }
            let slot = slots.slot_of(name);
            let previous = slots.database.get(name);
            let entry = match previous {
                Some(p) if p.policy == key.policy && p.digest == key.digest => p.clone(),
                _ => {
                    if previous.is_none_or(|p| p.policy != key.policy) {
                        limits.set_key(slot, &key.policy, now);
                    }
                    match previous {
                        Some(_) => changes.changed += 1,
                        None => changes.added += 1,
                    }
                    Arc::new(self.client_key(
                        slot,
                        key.policy.clone(),
                        key.digest,
                        Origin::Database,
                    ))
                }
            };
            database.insert(name.clone(), entry);
        }
        let gone: Vec<Arc<ClientKey>> = slots
            .database
            .iter()
            .filter(|(name, _)| !database.contains_key(*name))
            .map(|(_, k)| k.clone())
            .collect();
        changes.removed = gone.len();
        slots.database = database;
        self.publish(&slots);
        release(&gone, limits, now);
        changes
    }

    /// Makes a reloaded file's `[[keys]]` the file's keys in force, and resolves every key's
    /// model list against the reloaded `catalog`. A name keeps the slot it ever had (a new
    /// one takes the next); a key whose limits changed gets new limiters (its budget's spend
    /// carried over); a key the file dropped stops authenticating; a database key named like
    /// a file key gives way to it.
    pub fn reload(&self, keys: &[KeyConfig], catalog: Arc<Catalog>, limits: &Store) -> Changes {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        self.catalog.store(catalog);
        let now = SystemTime::now();
        let mut changes = Changes::default();
        let mut file = Vec::with_capacity(keys.len());
        for k in keys {
            let policy = k.policy();
            let slot = slots.slot_of(&k.name);
            let previous = slots
                .file
                .iter()
                .find(|f| *f.name == *k.name)
                .or_else(|| slots.database.get(&k.name));
            let digest = digest(k.key.as_bytes());
            match previous {
                None => changes.added += 1,
                Some(p) if p.policy != policy || p.digest != digest => changes.changed += 1,
                Some(_) => {}
            }
            if previous.is_none_or(|p| p.policy != policy) {
                limits.set_key(slot, &policy, now);
            }
            file.push(Arc::new(self.client_key(
                slot,
                policy,
                digest,
                Origin::File,
            )));
        }
        let gone: Vec<Arc<ClientKey>> = slots
            .file
            .iter()
            .filter(|old| !keys.iter().any(|k| *k.name == *old.name))
            .cloned()
            .collect();
        changes.removed = gone.len();
        // The database's keys, resolved against the new catalogue: a file key now hides the
        // one of its name; one the file hid before joins if the file dropped it.
        let in_file = |name: &str| keys.iter().any(|k| k.name == name);
        let hidden = std::mem::take(&mut slots.shadowed);
        let candidates: Vec<(KeyPolicy, [u8; 32])> = slots
            .database
            .values()
            .map(|k| (k.policy.clone(), k.digest))
            .chain(hidden)
            .collect();
        let mut database = HashMap::with_capacity(candidates.len());
        for (policy, digest) in candidates {
            let name = policy.name.clone();
            if in_file(&name) {
                if slots.database.contains_key(&name) {
                    tracing::warn!(
                        key = %name,
                        "a key in the ledger's database has the name of a key in the \
                         configuration file; the file's is used"
                    );
                }
                slots.shadowed.push((policy, digest));
                continue;
            }
            let slot = slots.slot_of(&name);
            if !slots.database.contains_key(&name) {
                // It was hidden: its own limits take the slot.
                limits.set_key(slot, &policy, now);
            }
            let entry = self.client_key(slot, policy, digest, Origin::Database);
            database.insert(name, Arc::new(entry));
        }
        // A dropped file key whose database namesake now holds its slot keeps the limits
        // that one was given.
        let gone: Vec<Arc<ClientKey>> = gone
            .into_iter()
            .filter(|old| !database.contains_key(&*old.name))
            .collect();
        slots.file = file;
        slots.database = database;
        self.publish(&slots);
        release(&gone, limits, now);
        changes
    }

    /// Swaps in the table of `slots`' keys: the file's in order, then the database's by name.
    fn publish(&self, slots: &Slots) {
        let mut listed = slots.file.clone();
        let mut from_db: Vec<_> = slots.database.values().cloned().collect();
        from_db.sort_by(|a, b| a.name.cmp(&b.name));
        listed.extend(from_db);
        let by_digest = listed.iter().map(|k| (k.digest, k.clone())).collect();
        self.table.store(Arc::new(Table { by_digest, listed }));
    }

    /// Whether requests need a key at all.
    pub fn enabled(&self) -> bool {
        !self.table.load().by_digest.is_empty()
    }

    /// Every key in force: the file's in order, then the database's by name.
    pub fn list(&self) -> Vec<Arc<ClientKey>> {
        self.table.load().listed.clone()
    }

    /// The key in force named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<ClientKey>> {
        self.table
            .load()
            .listed
            .iter()
            .find(|k| *k.name == *name)
            .cloned()
    }

    /// Number of trial keys that have not expired at `now`.
    pub fn active_trials(&self, now: SystemTime) -> usize {
        self.table
            .load()
            .listed
            .iter()
            .filter(|k| k.policy.expires.is_some_and(|t| t > now))
            .count()
    }

    /// Authenticates the value of an `Authorization` header.
    pub fn authenticate(&self, header: Option<&[u8]>, now: SystemTime) -> Result<Caller, ApiError> {
        let table = self.table.load();
        if table.by_digest.is_empty() {
            return Ok(Caller { key: None });
        }
        let header = header.ok_or(ApiError::Unauthorized(
            "missing API key: send it as `Authorization: Bearer <key>`",
        ))?;
        let token = strip_bearer(header).ok_or(ApiError::Unauthorized(
            "malformed Authorization header: expected `Bearer <key>`",
        ))?;
        let key = table
            .by_digest
            .get(&digest(token))
            .ok_or(ApiError::Unauthorized("invalid API key"))?;
        if key.policy.expires.is_some_and(|t| t <= now) {
            return Err(ApiError::TrialExpired);
        }
        Ok(Caller {
            key: Some(key.clone()),
        })
    }
}

/// Drops the limiters of the keys no longer in force (their slots stay theirs): their budgets
/// leave the budget gauge. A request of theirs still in flight settles its spend, as after any
/// change of limits.
fn release(gone: &[Arc<ClientKey>], limits: &Store, now: SystemTime) {
    for key in gone {
        let none = KeyPolicy {
            name: key.name.to_string(),
            ..KeyPolicy::default()
        };
        limits.set_key(key.slot, &none, now);
    }
}

/// SHA-256 of a secret: what is kept instead of the secret.
pub(crate) fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Index of the digest equal to `presented`, comparing every entry in constant time (the
/// time taken does not depend on which entry matched, or how much of it).
pub(crate) fn find_digest<'a>(
    digests: impl Iterator<Item = &'a [u8; 32]>,
    presented: &[u8; 32],
) -> Option<usize> {
    let mut found = None;
    for (i, d) in digests.enumerate() {
        if bool::from(d.ct_eq(presented)) {
            found = Some(i);
        }
    }
    found
}

/// The token of a `Bearer <token>` header value.
pub(crate) fn strip_bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Arc<Catalog> {
        let config = crate::config::Config::from_toml(
            "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n",
            "test.toml",
            &|_| None,
        )
        .unwrap();
        Arc::new(Catalog::new(&config))
    }

    fn key(name: &str, secret: &str, expires: Option<&str>) -> KeyConfig {
        KeyConfig {
            name: name.into(),
            key: secret.into(),
            trial_expires: expires.map(Into::into),
            ..KeyConfig::default()
        }
    }

    #[test]
    fn authenticates_table() {
        let store = KeyStore::new(
            &[
                key("alice", "alice-key-1", None),
                key("trial", "trial-key-1", Some("2020-01-01T00:00:00Z")),
            ],
            catalog(),
            0,
        );
        let now = SystemTime::now();
        type Case<'a> = (Option<&'a [u8]>, Result<Option<usize>, &'a str>);
        let cases: &[Case] = &[
            (Some(b"Bearer alice-key-1"), Ok(Some(0))),
            (Some(b"bearer  alice-key-1 "), Ok(Some(0))),
            (None, Err("invalid_api_key")),
            (Some(b"Basic abc"), Err("invalid_api_key")),
            (Some(b"Bearer "), Err("invalid_api_key")),
            (Some(b"Bearer alice-key-2"), Err("invalid_api_key")),
            (Some(b"Bearer trial-key-1"), Err("trial_expired")),
        ];
        for (header, want) in cases {
            let got = store
                .authenticate(*header, now)
                .map(|c| c.key.map(|k| k.slot))
                .map_err(|e| e.code());
            assert_eq!(got, *want, "header {header:?}");
        }
        assert_eq!(store.active_trials(now), 0);
        assert_eq!(store.active_trials(SystemTime::UNIX_EPOCH), 1);
    }

    #[test]
    fn no_keys_means_open() {
        let store = KeyStore::new(&[], catalog(), 0);
        assert!(store
            .authenticate(None, SystemTime::now())
            .unwrap()
            .key
            .is_none());
    }

    fn stored(name: &str, secret: &str, rpm: Option<u64>) -> StoredKey {
        let mut policy = KeyPolicy {
            name: name.into(),
            ..KeyPolicy::default()
        };
        policy.limits.rpm = rpm;
        crate::ledger::keys::stored(policy, secret, SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn database_keys_join_change_and_leave_with_stable_slots() {
        let catalog = catalog();
        let config = crate::config::Config::from_toml(
            "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n",
            "test.toml",
            &|_| None,
        )
        .unwrap();
        let limits = Store::Local(Arc::new(crate::state::InProcess::new(
            &config,
            &catalog,
            std::time::Instant::now(),
        )));
        let store = KeyStore::new(&[key("file", "file-key-1", None)], catalog, 0);
        let now = SystemTime::now();
        let slot = |secret: &[u8]| {
            store
                .authenticate(Some(&[b"Bearer ", secret].concat()), now)
                .map(|c| c.key.map(|k| k.slot))
                .map_err(|e| e.code())
        };
        let changes = store.sync(
            &[
                stored("b", "b-secret-1", None),
                stored("a", "a-secret-1", None),
            ],
            &limits,
        );
        assert_eq!((changes.added, changes.changed, changes.removed), (2, 0, 0));
        assert_eq!(slot(b"file-key-1"), Ok(Some(0)));
        let (a, b) = (slot(b"a-secret-1").unwrap(), slot(b"b-secret-1").unwrap());
        assert!(a.is_some() && b.is_some() && a != b);
        // Same table again: nothing changes, the same entries stay.
        let same = store.sync(
            &[
                stored("b", "b-secret-1", None),
                stored("a", "a-secret-1", None),
            ],
            &limits,
        );
        assert_eq!(same, Changes::default());
        // `a` rotated and limited, `b` revoked, a file name in the database ignored.
        let changes = store.sync(
            &[
                stored("a", "a-secret-2", Some(5)),
                stored("file", "x-secret-1", None),
            ],
            &limits,
        );
        assert_eq!((changes.added, changes.changed, changes.removed), (0, 1, 1));
        assert_eq!(slot(b"a-secret-1"), Err("invalid_api_key"));
        assert_eq!(slot(b"a-secret-2"), Ok(a));
        assert_eq!(slot(b"b-secret-1"), Err("invalid_api_key"));
        assert_eq!(slot(b"x-secret-1"), Err("invalid_api_key"));
        // `b` comes back in its old slot.
        store.sync(&[stored("b", "b-secret-3", None)], &limits);
        assert_eq!(slot(b"b-secret-3"), Ok(b));
        let names: Vec<_> = store.list().iter().map(|k| k.name.to_string()).collect();
        assert_eq!(names, ["file", "b"]);
    }

    /// A reloaded file: a rotated key answers to its new secret only, in its slot; a dropped
    /// key stops; a new one takes the next slot; the database's keys stay and resolve their
    /// models against the reloaded catalogue; a key whose limits changed gets them.
    #[test]
    fn a_reloaded_file_swaps_its_keys_and_keeps_the_databases() {
        let toml = |models: &str| format!("[providers.a]\nkind = \"mock\"\n{models}");
        let first = crate::config::Config::from_toml(
            &toml("[models.m]\nproviders = [\"a\"]\n"),
            "test.toml",
            &|_| None,
        )
        .unwrap();
        let catalog = Arc::new(Catalog::new(&first));
        let limits = Store::Local(Arc::new(crate::state::InProcess::new(
            &first,
            &catalog,
            std::time::Instant::now(),
        )));
        let store = KeyStore::new(
            &[
                key("alice", "alice-key-1", None),
                key("bob", "bob-key-1", None),
            ],
            catalog.clone(),
            0,
        );
        let mut carol = stored("carol", "carol-key-1", None);
        carol.policy.models = Some(vec!["m".into(), "n".into()]);
        carol.policy.limits.budget_usd = Some(10.0);
        // A database key hidden by bob, the file's.
        store.sync(&[carol, stored("bob", "bob-db-key-1", None)], &limits);
        let now = SystemTime::now();
        let caller = |secret: &str| {
            store
                .authenticate(Some(format!("Bearer {secret}").as_bytes()), now)
                .map(|c| c.key.unwrap())
                .map_err(|e| e.code())
        };
        let carol_slot = caller("carol-key-1").unwrap().slot;
        assert_eq!(carol_slot, 2);

        let next = crate::config::Config::from_toml(
            &toml("[models.m]\nproviders = [\"a\"]\n[models.n]\nproviders = [\"a\"]\n"),
            "test.toml",
            &|_| None,
        )
        .unwrap();
        let reloaded = Arc::new(catalog.next(&next));
        limits.local().reconfigure(&reloaded);
        let mut alice = key("alice", "alice-key-2", None);
        alice.rate_limit_rpm = Some(1);
        let changes = store.reload(
            &[alice, key("dave", "dave-key-1", None)],
            reloaded.clone(),
            &limits,
        );
        assert_eq!((changes.added, changes.changed, changes.removed), (1, 1, 1));
        assert_eq!(caller("alice-key-1").unwrap_err(), "invalid_api_key");
        assert_eq!(caller("alice-key-2").unwrap().slot, 0);
        assert_eq!(caller("bob-key-1").unwrap_err(), "invalid_api_key");
        // The file dropped bob: the database's bob answers, in bob's slot.
        let bob = caller("bob-db-key-1").unwrap();
        assert_eq!((bob.slot, bob.origin), (1, Origin::Database));
        assert_eq!(caller("dave-key-1").unwrap().slot, 3);
        // Carol lists the model the reload added.
        let carol = caller("carol-key-1").unwrap();
        assert_eq!(carol.slot, carol_slot);
        let (body, mask) = carol.models.as_ref().unwrap();
        assert_eq!(&mask[..], [true, true]);
        assert!(std::str::from_utf8(body).unwrap().contains("\"n\""));
        // Alice's new limit holds: one request a minute.
        let m = reloaded.model_id("m");
        let now = crate::state::Now::read();
        assert!(limits.local().admit(0, m, 1, now).is_ok());
        assert!(limits.local().admit(0, m, 1, now).is_err());
        let names: Vec<_> = store.list().iter().map(|k| k.name.to_string()).collect();
        assert_eq!(names, ["alice", "dave", "bob", "carol"]);
        // Revoked, carol's limiters go (her budget leaves the gauge).
        let wall = SystemTime::now();
        assert!(limits.local().key_budget(carol_slot, wall).is_some());
        store.sync(&[stored("bob", "bob-db-key-1", None)], &limits);
        assert!(limits.local().key_budget(carol_slot, wall).is_none());
    }
}
