//! `pod-template-hash`: the name of a version.
//!
//! Every ReplicaSet of a Deployment is named `<deployment>-<hash>`, where the
//! hash is computed from the pod template. Two properties matter:
//!
//! * **Deterministic.** The same template always gives the same name, so a
//!   controller that crashes after creating the ReplicaSet and syncs again
//!   finds its own ReplicaSet (`AlreadyExists` with an equal template) instead
//!   of creating a second one.
//! * **Collisions are survivable.** 32 bits can collide. If the name is taken
//!   by a ReplicaSet with a *different* template, the controller raises
//!   `status.collisionCount` and the count is hashed too, giving a new name.
//!
//! Upstream (`controller.ComputeHash`) feeds the 32-bit FNV-1a hash with
//! `dump.ForHash(template)`, a Go-specific printout of the struct. We feed it
//! the template's JSON as k8s-openapi serializes it: struct fields in a fixed
//! order, maps (`BTreeMap`) sorted by key, absent fields left out. That is
//! just as deterministic, but not byte-identical to Go's dump, so **our hashes
//! differ from a real cluster's** for the same template. Nothing depends on
//! that: the hash only has to be stable within one cluster.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// FNV-1a, 32 bits (Go's `hash/fnv.New32a`): for each byte, XOR it in, then
/// multiply by the FNV prime. Tiny, fast and well spread; not cryptographic,
/// which a name does not need.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a32(u32);

impl Fnv1a32 {
    const OFFSET_BASIS: u32 = 2_166_136_261;
    const PRIME: u32 = 16_777_619;

    pub fn new() -> Self {
        Fnv1a32(Self::OFFSET_BASIS)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u32::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    pub fn sum32(&self) -> u32 {
        self.0
    }
}

impl Default for Fnv1a32 {
    fn default() -> Self {
        Self::new()
    }
}

// ANCHOR: hash
/// Upstream `controller.ComputeHash(template, collisionCount)`.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hasher = Fnv1a32::new();
    let dump = serde_json::to_vec(template).expect("a PodTemplateSpec always serializes");
    hasher.write(&dump);
    if let Some(count) = collision_count {
        // Go writes `uint32(count)` little-endian into an 8-byte buffer, so
        // the upper four bytes are zero.
        hasher.write(&u64::from(count as u32).to_le_bytes());
    }
    safe_encode_string(&hasher.sum32().to_string())
}

/// Upstream `rand.SafeEncodeString`: maps each character onto an alphabet
/// without vowels (no accidental words) and without `0 1 3` (look like
/// `O l E`). Applied to the decimal digits of the hash, `0..9` become
/// `4 5 6 7 8 9 b c d f`.
pub fn safe_encode_string(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.chars()
        .map(|c| char::from(ALPHANUMS[c as usize % ALPHANUMS.len()]))
        .collect()
}
// ANCHOR_END: hash

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::tests::template;

    #[test]
    fn fnv1a_32_test_vectors() {
        // From the FNV reference test suite (and Go's hash/fnv tests).
        for (input, expected) in [
            ("", 0x811c9dc5u32),
            ("a", 0xe40c292c),
            ("ab", 0x4d2505ca),
            ("abc", 0x1a47e90b),
            ("foobar", 0xbf9cf968),
        ] {
            let mut h = Fnv1a32::new();
            h.write(input.as_bytes());
            assert_eq!(h.sum32(), expected, "{input:?}");
        }
    }

    #[test]
    fn safe_encoding_maps_digits() {
        assert_eq!(safe_encode_string("0123456789"), "456789bcdf");
        assert_eq!(safe_encode_string(""), "");
    }

    #[test]
    fn hash_is_stable_and_depends_on_template_and_collision_count() {
        let v1 = template("app:v1");
        let v2 = template("app:v2");
        let h = compute_hash(&v1, None);
        assert_eq!(h, compute_hash(&v1.clone(), None), "deterministic");
        // Pinned, so an accidental change of the dump (which would rename
        // every ReplicaSet after an upgrade) is noticed.
        assert_eq!(h, "6c586d8d9d");
        assert!(
            h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{h}"
        );
        assert_ne!(h, compute_hash(&v2, None), "another template, another name");
        let c0 = compute_hash(&v1, Some(0));
        let c1 = compute_hash(&v1, Some(1));
        // Some(0) still appends eight zero bytes, so it differs from None.
        assert_ne!(h, c0);
        assert_ne!(c0, c1);
        assert_eq!(c1, compute_hash(&v1, Some(1)));
    }
}
