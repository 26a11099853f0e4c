//! Targets that are already normal: their key found in one pass over the bytes, without the
//! URL parser, a copy or the memo. Anything this is not sure of goes to the parser. Pure.

/// The key of `rest` (a target after its scheme) when it is plainly normal already, as most
/// targets are: the key the URL parser would give (the host and the path up to `?` or `#`,
/// without trailing slashes), without formatting a URL and parsing it. `None` when anything
/// might need the parser: a port, user info, a host not of lower-case ASCII labels that start
/// with a letter (upper case, IDNA, numbers that read as IPv4, empty labels, trailing dots), a
/// path with a dot segment, a backslash, or a character the parser would percent-encode.
/// The key is a prefix of `rest`: it is handed out as a slice, without a copy.
pub(super) fn plain_key(rest: &str) -> Option<&str> {
    // One pass over the bytes, each looked up in one table (this runs for every request): the
    // host label by label, then the path up to `?` or `#`. The runs between the bytes that
    // matter (a label's letters, a path's `PLAIN` bytes) are one table test each behind one
    // length check, rather than a test of every byte for every class.
    let bytes = rest.as_bytes();
    let class = |at: usize| bytes.get(at).map_or(END, |&b| CLASSES[usize::from(b)]);
    let run = |mut at: usize, of: u8| {
        while at < bytes.len() && CLASSES[usize::from(bytes[at])] & of != 0 {
            at += 1;
        }
        at
    };
    let mut i = 0;
    loop {
        let start = i;
        if class(i) & LETTER == 0 {
            return None;
        }
        i = run(i + 1, LABEL);
        if !plain_label(bytes.get(start..i)?) {
            return None;
        }
        if bytes.get(i) != Some(&b'.') {
            break;
        }
        i += 1;
    }
    let host_end = i;
    // Right after the host: the end, `/`, `?` or `#`; anything else (`:`, `\`, upper case, ...)
    // needs the parser.
    if class(i) & (END | SLASH) == 0 {
        return None;
    }
    loop {
        i = run(i, PLAIN);
        let here = class(i);
        if here & END != 0 {
            break;
        }
        // Not `PLAIN`: a byte the path may not hold as it is, or a `.` or `%` to look at again.
        if here & PATH == 0 {
            return None;
        }
        if here & DOT != 0
            && class(i.saturating_sub(1)) & SLASH != 0
            && dot_segment_ends(class(i + 1), class(i + 2))
        {
            return None;
        }
        if here & PERCENT != 0 && matches!(bytes.get(i + 1..i + 3), Some([b'2', b'e' | b'E'])) {
            return None;
        }
        i += 1;
    }
    let mut end = i;
    while end > host_end && bytes.get(end - 1) == Some(&b'/') {
        end -= 1;
    }
    rest.get(..end)
}

/// Whether a `.` that starts a path segment, followed by bytes of classes `next` and `after`,
/// is a dot segment (`.` or `..`) that the parser would remove.
fn dot_segment_ends(next: u8, after: u8) -> bool {
    next & (END | SLASH) != 0 || (next & DOT != 0 && after & (END | SLASH) != 0)
}

/// The classes of a byte in [`plain_key`]'s scan, as bits: what it may start or continue, and
/// which bytes need a second look.
const LETTER: u8 = 1; // a-z: may start a host label
const LABEL: u8 = 2; // a-z, 0-9, -: may continue one
const PATH: u8 = 4; // kept as it is in a path (`%` and `.` after a second look)
const SLASH: u8 = 8;
const DOT: u8 = 16;
const PERCENT: u8 = 32;
/// The end of the path: `?`, `#`, or past the last byte.
const END: u8 = 64;
/// Kept as it is in a path, with no second look: [`PATH`] but for `.` and `%`.
const PLAIN: u8 = 128;

/// [`LETTER`] … [`END`] for every byte.
static CLASSES: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = match byte {
            b'a'..=b'z' => LETTER | LABEL | PATH | PLAIN,
            b'0'..=b'9' | b'-' => LABEL | PATH | PLAIN,
            b'A'..=b'Z' | b'_' | b'~' => PATH | PLAIN,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {
                PATH | PLAIN
            }
            b':' | b'@' => PATH | PLAIN,
            b'/' => PATH | SLASH | PLAIN,
            b'.' => PATH | DOT,
            b'%' => PATH | PERCENT,
            b'?' | b'#' => END,
            _ => 0,
        };
        b += 1;
    }
    table
}

/// Whether a host label that [`plain_key`]'s scan took (a lower-case letter, then letters, digits
/// and hyphens) is one IDNA passes through unchanged (the `idna` crate's own ASCII fast path): no
/// hyphen last, and no `--` after two characters (`xn--` and the like go to the full check).
/// Starting with a letter, the last label is no number, so the host is no IPv4 address.
fn plain_label(label: &[u8]) -> bool {
    label.last() != Some(&b'-') && label.get(2..4) != Some(b"--")
}

/// [`super::normalise`]'s key for a target that takes none of its slow paths, found without the
/// memo or a copy: printable ASCII (no control characters, no spaces to trim), an `http://`,
/// `https://` or `//` prefix or none, and a plainly normal rest ([`plain_key`]). With no prefix
/// there is no scheme to refuse either: a host never holds a `:`, so any `://` comes after a
/// `/`, `?` or `#`. `None` sends the target the long way, which gives its key or the error.
pub(super) fn fast_key(target: &str, max_len: usize) -> Option<&str> {
    let bytes = target.as_bytes();
    if bytes.len() > max_len {
        return None;
    }
    let prefixed = |prefix: &[u8]| {
        bytes
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    };
    let skip = if prefixed(b"https://") {
        8
    } else if prefixed(b"http://") {
        7
    } else if prefixed(b"//") {
        2
    } else {
        0
    };
    let rest = target.get(skip..)?;
    let key = plain_key(rest)?;
    // The prefix and the key are printable ASCII (the scan takes no other byte); what follows the
    // key (trailing slashes, a query, a fragment) must be too.
    let after = rest.as_bytes().get(key.len()..)?;
    if after.iter().any(|&b| b <= b' ' || b >= 0x7f) {
        return None;
    }
    Some(key)
}
