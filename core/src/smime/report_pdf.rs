//! The PDF verification report attached to every opened message (seed gemSpec_CM_KOMLE; later
//! versions dropped it, we keep it).
//!
//! Made with `pdf-writer`: one A4 page, Helvetica with WinAnsiEncoding, so German umlauts print.
//! It contains only verification facts, never message content.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

/// Renders `lines` (title first) as a one-page PDF.
pub fn render(lines: &[String]) -> Vec<u8> {
    let (catalog, pages, page, font, content_id) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
    );
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page]).count(1);
    let mut p = pdf.page(page);
    p.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
    p.parent(pages);
    p.contents(content_id);
    p.resources().fonts().pair(Name(b"F1"), font);
    p.finish();
    pdf.type1_font(font)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    let mut c = Content::new();
    c.begin_text();
    c.set_font(Name(b"F1"), 16.0);
    c.next_line(56.0, 780.0);
    c.set_leading(18.0);
    for (i, line) in lines.iter().enumerate() {
        if i == 1 {
            c.set_font(Name(b"F1"), 11.0);
            c.set_leading(16.0);
        }
        // A long line is cut into pieces of 90 characters so it stays on the page.
        let chars: Vec<char> = line.chars().collect();
        for piece in chars.chunks(90) {
            let s: String = piece.iter().collect();
            c.show(Str(&win_ansi(&s)));
            c.next_line_using_leading();
        }
        if chars.is_empty() {
            c.next_line_using_leading();
        }
    }
    c.end_text();
    pdf.stream(content_id, &c.finish());
    pdf.finish()
}

/// Latin-1 subset of WinAnsi; other characters become `?`.
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|ch| match ch {
            '„' => 0x84,
            '“' => 0x93,
            '–' => 0x96,
            c if (c as u32) < 0x100 => c as u32 as u8,
            _ => b'?',
        })
        .collect()
}
