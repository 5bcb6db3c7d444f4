//! Address lists in header fields: finding addr-specs and removing some of them in place.
//!
//! Why hand-written: KOM-LE-A_2028 removes single addresses from `To`/`Cc`/`From`/`Sender` of the
//! copy that is protected, and everything else (display names, comments, groups, folding) must
//! stay as the client wrote it. Parsers that build a model and re-serialise lose that, so this
//! scanner finds element boundaries at top level (outside quotes, comments and angle brackets)
//! and cuts the original text.

use super::error::SmimeError;
use super::headers;
use std::ops::Range;

/// One item of an address list.
#[derive(Debug, Clone)]
enum Item {
    Mailbox(Range<usize>),
    Group {
        name: Range<usize>,
        members: Vec<Range<usize>>,
    },
}

/// Splits an address-list value into mailboxes and groups (ranges into `value`).
fn items(value: &[u8]) -> Vec<Item> {
    let mut out = Vec::new();
    let mut group: Option<(Range<usize>, Vec<Range<usize>>)> = None;
    let (mut quoted, mut comment, mut angle, mut escape) = (false, 0usize, false, false);
    let mut start = 0;
    let close = |r: Range<usize>,
                 group: &mut Option<(Range<usize>, Vec<Range<usize>>)>,
                 out: &mut Vec<Item>| {
        if value[r.clone()].iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match group {
            Some((_, members)) => members.push(r),
            None => out.push(Item::Mailbox(r)),
        }
    };
    for (i, &b) in value.iter().enumerate() {
        if escape {
            escape = false;
            continue;
        }
        match b {
            b'\\' if quoted || comment > 0 => escape = true,
            b'"' if comment == 0 => quoted = !quoted,
            b'(' if !quoted => comment += 1,
            b')' if !quoted && comment > 0 => comment -= 1,
            b'<' if !quoted && comment == 0 => angle = true,
            b'>' if !quoted && comment == 0 => angle = false,
            b',' if !quoted && comment == 0 && !angle => {
                close(start..i, &mut group, &mut out);
                start = i + 1;
            }
            b':' if !quoted && comment == 0 && !angle && group.is_none() => {
                group = Some((start..i + 1, Vec::new()));
                start = i + 1;
            }
            b';' if !quoted && comment == 0 && !angle && group.is_some() => {
                close(start..i, &mut group, &mut out);
                if let Some((name, members)) = group.take() {
                    out.push(Item::Group { name, members });
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    close(start..value.len(), &mut group, &mut out);
    if let Some((name, members)) = group.take() {
        out.push(Item::Group { name, members });
    }
    out
}

/// The addr-spec of one mailbox text (`Name <a@b>` or `a@b (comment)`), lower-cased.
fn addr_spec(mailbox: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(mailbox);
    let spec = match (text.rfind('<'), text.rfind('>')) {
        (Some(l), Some(r)) if l < r => text[l + 1..r].to_string(),
        _ => strip_comments(&text),
    };
    let spec: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    if spec.contains('@') {
        Some(spec.to_ascii_lowercase())
    } else {
        None
    }
}

fn strip_comments(s: &str) -> String {
    let mut depth = 0usize;
    s.chars()
        .filter(|&c| match c {
            '(' => {
                depth += 1;
                false
            }
            ')' if depth > 0 => {
                depth -= 1;
                false
            }
            _ => depth == 0,
        })
        .collect()
}

/// All addr-specs in an address-list value (group members included), lower-cased.
pub fn addresses(value: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for item in items(value) {
        match item {
            Item::Mailbox(r) => out.extend(addr_spec(&value[r])),
            Item::Group { members, .. } => {
                out.extend(members.into_iter().filter_map(|r| addr_spec(&value[r])))
            }
        }
    }
    out
}

/// All addr-specs in the fields named `name` of `mail`.
pub fn field_addresses(mail: &[u8], head: &headers::Head, name: &str) -> Vec<String> {
    head.fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case(name))
        .flat_map(|f| addresses(&mail[f.value.clone()]))
        .collect()
}

/// KOM-LE-A_2022: the sender is the `Sender` address, else the (first) `From` address.
pub fn sender_address(mail: &[u8]) -> Result<String, SmimeError> {
    let head = headers::parse(mail)?;
    field_addresses(mail, &head, "Sender")
        .into_iter()
        .next()
        .or_else(|| field_addresses(mail, &head, "From").into_iter().next())
        .ok_or(SmimeError::MissingHeader("From"))
}

/// The header fields A_2028 edits.
pub const ADDRESS_FIELDS: [&str; 4] = ["To", "Cc", "From", "Sender"];

/// What a `From` field holds once A_2028 removed its only mailbox (the sender had no usable
/// certificate): an empty group, so the field stays and names nobody.
pub const EMPTIED_FROM: &[u8] = b"undisclosed-sender:;";

/// KOM-LE-A_2028: removes every address in `remove` (compared case-insensitively) from the
/// `To`, `Cc`, `From` and `Sender` fields; all other text stays byte-identical. A `To`/`Cc`/
/// `Sender` field left without addresses is dropped; an emptied group stays as `name:;`; an
/// emptied `From` becomes [`EMPTIED_FROM`].
pub fn remove_addresses(mail: &[u8], remove: &[String]) -> Result<Vec<u8>, SmimeError> {
    let head = headers::parse(mail)?;
    let remove: Vec<String> = remove.iter().map(|a| a.to_ascii_lowercase()).collect();
    let gone = |v: &[u8]| addr_spec(v).is_some_and(|a| remove.contains(&a));
    let mut out = Vec::with_capacity(mail.len());
    let mut pos = 0;
    for f in &head.fields {
        if !ADDRESS_FIELDS
            .iter()
            .any(|n| f.name.eq_ignore_ascii_case(n))
        {
            continue;
        }
        let value = &mail[f.value.clone()];
        let list = items(value);
        let touched = list.iter().any(|it| match it {
            Item::Mailbox(r) => gone(&value[r.clone()]),
            Item::Group { members, .. } => members.iter().any(|r| gone(&value[r.clone()])),
        });
        if !touched {
            continue;
        }
        out.extend_from_slice(&mail[pos..f.range.start]);
        pos = f.range.end;
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for it in list {
            match it {
                Item::Mailbox(r) if !gone(&value[r.clone()]) => kept.push(value[r].to_vec()),
                Item::Mailbox(_) => {}
                Item::Group { name, members } => {
                    let mut g = value[name].to_vec();
                    let ms: Vec<&[u8]> = members
                        .iter()
                        .map(|r| &value[r.clone()])
                        .filter(|m| !gone(m))
                        .collect();
                    g.extend_from_slice(&ms.join(&b","[..]));
                    g.push(b';');
                    kept.push(g);
                }
            }
        }
        let has_address = kept.iter().any(|k| addresses(k).iter().any(|_| true));
        let is_from = f.name.eq_ignore_ascii_case("From");
        if !is_from && (kept.is_empty() || !has_address) {
            continue;
        }
        // From is required (RFC 5322 3.6): a From left without any mailbox becomes an empty
        // group (RFC 6854), so the protected copy and the outer message still carry one.
        if kept.is_empty() {
            kept.push(EMPTIED_FROM.to_vec());
        }
        let mut new_value = kept.join(&b","[..]);
        if !new_value.starts_with(b" ")
            && !new_value.starts_with(b"\t")
            && !new_value.starts_with(b"\r")
            && !new_value.starts_with(b"\n")
        {
            new_value.insert(0, b' ');
        }
        out.extend_from_slice(&mail[f.range.start..f.value.start]);
        out.extend_from_slice(&new_value);
        out.extend_from_slice(&mail[f.value.end..f.range.end]);
    }
    out.extend_from_slice(&mail[pos..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2028_from_without_its_only_mailbox_becomes_an_empty_group() {
        let mail = b"From: Praxis <s@x.de>\r\nSender: s@x.de\r\nTo: a@b.de\r\n\r\nText\r\n";
        let out = remove_addresses(mail, &["S@x.de".to_owned()]).unwrap();
        assert_eq!(
            out,
            b"From: undisclosed-sender:;\r\nTo: a@b.de\r\n\r\nText\r\n".to_vec()
        );
    }

    #[test]
    fn addresses_handle_quotes_comments_and_groups() {
        let v = br#" "Doe, John" <J@X.de>, a@b.de (c, d), Team: x@y.de, z@y.de;, last <l@m.de>"#;
        assert_eq!(
            addresses(v),
            ["j@x.de", "a@b.de", "x@y.de", "z@y.de", "l@m.de"]
        );
    }
}
