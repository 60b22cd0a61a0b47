//! The maps every stage's hot loops use: hashed with foldhash (keys are the program's own, never
//! chosen by an attacker who could aim for collisions), and an interner of texts.

use std::collections::{HashMap, HashSet};

/// A hash map with foldhash's fast hasher.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// A hash set with foldhash's fast hasher.
pub type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// Texts (or NULL) numbered as they are met; NULL is 0.
pub struct Interner {
    texts: Vec<Option<String>>,
    ids: FastMap<String, u32>,
}

impl Default for Interner {
    fn default() -> Interner {
        Interner {
            texts: vec![None],
            ids: FastMap::default(),
        }
    }
}

impl Interner {
    /// The number of `s` (0 for NULL), numbering it if it is new.
    pub fn id(&mut self, s: Option<&str>) -> u32 {
        let Some(s) = s else { return 0 };
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.texts.len() as u32;
        self.texts.push(Some(s.to_string()));
        self.ids.insert(s.to_string(), i);
        i
    }

    /// How many numbers are given, NULL's included.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Only NULL is numbered.
    pub fn is_empty(&self) -> bool {
        self.texts.len() == 1
    }

    /// The text numbered `id`.
    pub fn text(&self, id: u32) -> Option<&str> {
        self.texts[id as usize].as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_numbered_once_in_the_order_met_and_null_is_zero() {
        let mut i = Interner::default();
        assert_eq!(i.id(None), 0);
        assert_eq!(i.id(Some("b")), 1);
        assert_eq!(i.id(Some("a")), 2);
        assert_eq!(i.id(Some("b")), 1);
        assert_eq!(
            (i.text(0), i.text(1), i.text(2)),
            (None, Some("b"), Some("a"))
        );
    }
}
