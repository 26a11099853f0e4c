//! Count badges from stamps: a badge rendered once per look and message shape, into which later
//! counts of the same shape are written, rather than laid out again for every request.
//!
//! In the Verdana width tables every digit is equally wide, so two messages that differ only in
//! their digits (`1234` and `5678`, `1.2k` and `3.4k`) give badges that differ only where the
//! message is written: the same widths, positions and markup. A stamp is one such badge and
//! those places. Which places they are is found, not assumed: the badge is rendered again with
//! every digit changed, and the bytes that differ must be the message's digits, occurrence after
//! occurrence; anything else and no stamp is kept. Pure; the bounded memo of stamps, [`Stamps`],
//! belongs to the application state, and only the reused body buffers are per thread.

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use dashmap::DashMap;
use shields::{Font, get_text_width};

use crate::bounded::Room;
use crate::render::badge::{self, Look};

mod bodies;

/// Stamps kept at most (each about a badge's size); the memo starts afresh when full.
const CAPACITY: usize = 256;

/// Whether the digits share one width in every font the badge styles use: if an update of the
/// width tables ever broke that, stamps would be wrong, so none are made.
fn digits_share_widths() -> bool {
    [
        Font::VerdanaNormal11,
        Font::VerdanaNormal10,
        Font::VerdanaBold10,
    ]
    .into_iter()
    .all(|font| {
        let zero = get_text_width("0", font);
        ["1", "2", "3", "4", "5", "6", "7", "8", "9"]
            .iter()
            .all(|digit| get_text_width(digit, font).to_bits() == zero.to_bits())
    })
}

/// Every stamp made, by look (a look has one per message shape seen), at most 256; the
/// application state holds one and renders count badges through it.
pub struct Stamps {
    /// The stamps of the default look, which nearly every badge has: found without hashing a look.
    default: RwLock<Vec<Stamp>>,
    /// The stamps of every other look.
    looks: DashMap<Look, Vec<Stamp>>,
    /// Stamps in both: a count of stamps, not of looks, so a bound beside the maps.
    room: Room,
    /// [`digits_share_widths`], found once: without it no stamp is made.
    digits_share_widths: bool,
}

impl Default for Stamps {
    fn default() -> Self {
        Self::new()
    }
}

impl Stamps {
    /// No stamps yet.
    pub fn new() -> Self {
        Self {
            default: RwLock::new(Vec::new()),
            looks: DashMap::new(),
            room: Room::new(CAPACITY),
            digits_share_widths: digits_share_widths(),
        }
    }

    /// [`badge::render`]: the same bytes, from a stamp when one fits.
    pub fn render(&self, look: &Look, message: &str) -> Bytes {
        if !self.digits_share_widths {
            return badge::render(look, message).into();
        }
        if let Some(stamps) = self.looks.get(look) {
            if let Some(svg) = fill(&stamps, message) {
                return svg;
            }
        }
        let svg = badge::render(look, message);
        if let Some(stamp) = Stamp::cut(look, message, &svg)
            && self.make_room()
        {
            self.looks.entry(look.clone()).or_default().push(stamp);
        }
        svg.into()
    }

    /// [`Stamps::render`] with the default look.
    pub fn render_default(&self, message: &str) -> Bytes {
        if !self.digits_share_widths {
            return badge::render(&Look::default(), message).into();
        }
        if let Some(svg) = fill(&read(&self.default), message) {
            return svg;
        }
        let look = Look::default();
        let svg = badge::render(&look, message);
        if let Some(stamp) = Stamp::cut(&look, message, &svg)
            && self.make_room()
        {
            write(&self.default).push(stamp);
        }
        svg.into()
    }

    /// Claims a place for one more stamp; clears everything first when the memo is full.
    fn make_room(&self) -> bool {
        self.room.claim_clearing(|| {
            let mut cleared = std::mem::take(&mut *write(&self.default)).len();
            self.looks.retain(|_, stamps| {
                cleared += stamps.len();
                false
            });
            cleared
        })
    }
}

/// A lock of stamps, which a panic elsewhere cannot leave inconsistent (a push is whole or absent).
fn read(stamps: &RwLock<Vec<Stamp>>) -> RwLockReadGuard<'_, Vec<Stamp>> {
    stamps.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(stamps: &RwLock<Vec<Stamp>>) -> RwLockWriteGuard<'_, Vec<Stamp>> {
    stamps.write().unwrap_or_else(PoisonError::into_inner)
}

/// A badge and the places in it where its message's digits are written. A later badge of the same
/// shape is this one copied whole, with its message written over each place: one copy of the
/// badge and a few small writes. The copy is skipped when the reused buffer holds one of this
/// stamp's badges already ([`bodies::filled`]), as it does for a busy page.
#[derive(Debug)]
struct Stamp {
    /// The message with every digit written `0`.
    shape: Box<str>,
    /// The badge as first rendered.
    svg: Box<[u8]>,
    /// Where in `svg` the message's `slot` is written, in order; the places do not overlap.
    places: Vec<usize>,
    /// The part of the message written at each place (its first digit to its last).
    slot: std::ops::Range<usize>,
    /// Names this stamp's badges to the body pool, which may hand back a buffer holding one.
    id: bodies::StampId,
}

/// The badge for `message` from the stamp of its shape among `stamps`, if there is one.
///
/// Newest first: a count grows into longer shapes, so a busy page's badge has the newest stamp,
/// and the older ones need not be compared on every request.
fn fill(stamps: &[Stamp], message: &str) -> Option<Bytes> {
    stamps
        .iter()
        .rev()
        .find(|stamp| has_shape(message, &stamp.shape))
        .map(|stamp| stamp.fill(message))
}

/// Whether `message` is `shape` but for its digits.
fn has_shape(message: &str, shape: &str) -> bool {
    message.len() == shape.len()
        && message
            .bytes()
            .zip(shape.bytes())
            .all(|(m, s)| m == s || (s == b'0' && m.is_ascii_digit()))
}

impl Stamp {
    /// The stamp of `svg`, the badge of `look` and `message`, if it can be cut: the badge of the
    /// message with every digit changed must differ from it in the message's digits only.
    fn cut(look: &Look, message: &str, svg: &str) -> Option<Stamp> {
        let digits: Vec<usize> = message
            .bytes()
            .enumerate()
            .filter_map(|(i, b)| b.is_ascii_digit().then_some(i))
            .collect();
        let shape: String = message
            .chars()
            .map(|c| if c.is_ascii_digit() { '0' } else { c })
            .collect();
        let (Some(&first), Some(&last)) = (digits.first(), digits.last()) else {
            // No digits: the badge is the same for every message of this shape (this one).
            return Some(Stamp {
                shape: shape.into(),
                svg: svg.as_bytes().into(),
                places: Vec::new(),
                slot: 0..0,
                id: bodies::StampId::unique(),
            });
        };
        let other: String = message
            .chars()
            .map(|c| match c {
                '0' => '1',
                c if c.is_ascii_digit() => '0',
                c => c,
            })
            .collect();
        let other_svg = badge::render(look, &other);
        if other_svg.len() != svg.len() {
            return None;
        }
        let differ: Vec<usize> = (svg.bytes().zip(other_svg.bytes()))
            .enumerate()
            .filter_map(|(i, (a, b))| (a != b).then_some(i))
            .collect();
        if differ.is_empty() || differ.len() % digits.len() != 0 {
            return None;
        }
        let slot = first..last + 1;
        let mut places = Vec::new();
        let mut from = 0;
        for group in differ.chunks(digits.len()) {
            // The message's digits, in order, spaced as in the message, after the last place.
            let start = group[0];
            let end = start + slot.len();
            let spaced = group
                .iter()
                .zip(&digits)
                .all(|(&at, &i)| at - start == i - first);
            if !spaced
                || start < from
                || svg.get(start..end)? != message.get(slot.clone())?
                || other_svg.get(start..end)? != other.get(slot.clone())?
            {
                return None;
            }
            places.push(start);
            from = end;
        }
        Some(Stamp {
            shape: shape.into(),
            svg: svg.as_bytes().into(),
            places,
            slot,
            id: bodies::StampId::unique(),
        })
    }

    /// The badge for `message`, which has this stamp's shape.
    fn fill(&self, message: &str) -> Bytes {
        let written = message
            .as_bytes()
            .get(self.slot.clone())
            .unwrap_or_default();
        bodies::filled(self.id, self.svg.len(), |svg, holds_a_badge| {
            // A buffer holding one of this stamp's badges differs only at the places.
            if !holds_a_badge {
                svg.extend_from_slice(&self.svg);
            }
            for &at in &self.places {
                // Always in bounds: `cut` found each place in the badge, as long as the slot.
                if let Some(place) = svg.get_mut(at..at + written.len()) {
                    place.copy_from_slice(written);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::badge::{Color, Style};

    fn looks() -> Vec<Look> {
        let mut looks = Vec::new();
        for (_, style) in Style::ALL {
            for label in ["hits", "", "views 2024", "a<b>&"] {
                looks.push(Look {
                    style,
                    label: label.into(),
                    color: Color::count(),
                    label_color: None,
                });
                looks.push(Look {
                    style,
                    label: label.into(),
                    color: "ff69b4".parse().unwrap_or_else(|_| Color::count()),
                    label_color: "abc".parse().ok(),
                });
            }
        }
        looks
    }

    #[test]
    fn the_digits_share_widths() {
        assert!(digits_share_widths(), "stamps would never be used");
    }

    #[test]
    fn stamped_badges_are_rendered_badges() {
        let stamps = Stamps::new();
        let messages = [
            "0",
            "7",
            "42",
            "999",
            "1000",
            "1234",
            "98765",
            "1,234",
            "12,345,678",
            "1.2k",
            "12k",
            "3.4M",
            "12 / 3,456",
            "0 / 0",
            "no url",
            "8",
            "1,000",
            "5.6k",
            "99 / 1,000",
        ];
        for look in looks() {
            for _round in 0..2 {
                for message in messages {
                    let svg = badge::render(&look, message);
                    assert!(
                        Stamp::cut(&look, message, &svg).is_some(),
                        "no stamp for {look:?} {message:?}"
                    );
                    assert_eq!(stamps.render(&look, message), svg, "{look:?} {message:?}");
                    if look == Look::default() {
                        assert_eq!(stamps.render_default(message), svg, "{message:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn successive_counts_are_rendered_badges() {
        // On one thread a buffer comes back holding the badge before: only digits are written.
        let stamps = Stamps::new();
        for look in looks().into_iter().take(4) {
            for n in (990..1010).chain(9_995..10_005) {
                let message = n.to_string();
                let svg = badge::render(&look, &message);
                assert_eq!(stamps.render(&look, &message), svg, "{look:?} {message}");
                assert_eq!(
                    stamps.render(&look, &message),
                    svg,
                    "{look:?} {message}, again"
                );
                if look == Look::default() {
                    assert_eq!(stamps.render_default(&message), svg, "{message}");
                }
            }
        }
    }

    #[test]
    fn a_stamp_is_cut_at_each_written_message() {
        let look = Look::default();
        let svg = badge::render(&look, "1234");
        let stamp = Stamp::cut(&look, "1234", &svg);
        assert!(
            stamp.as_ref().is_some_and(|s| s.places.len() > 1),
            "{stamp:?}"
        );
        let stamp = Stamp::cut(&look, "4321", &svg);
        assert!(stamp.is_none(), "a message that is not the badge's");
    }
}
