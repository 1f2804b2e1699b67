//! The annotations of an overlay image (slice index, edge letters, orientation statement) in
//! a 5x7 bitmap font.

use super::draw::{Rgb, View};

/// 5x7 glyphs (rows top to bottom, bit 4 = leftmost pixel) of the characters the images use.
fn glyph(ch: char) -> [u8; 7] {
    match ch {
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        _ => [0; 7],
    }
}

/// Writes white text with a black shadow; `(x, y)` is the top-left corner.
fn text(img: &mut Rgb, s: &str, x: usize, y: usize, scale: usize) {
    for (shadow, colour) in [(1, [0, 0, 0]), (0, [255, 255, 255])] {
        for (n, ch) in s.chars().enumerate() {
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..5 {
                    if bits & (16 >> col) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let px = x + (n * 6 + col) * scale + dx + shadow;
                            let py = y + row * scale + dy + shadow;
                            if px < img.width && py < img.height {
                                img.set(px, py, colour);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds the slice index, the edge letters and the orientation statement.
pub(crate) fn annotate(img: &mut Rgb, k: usize, view: &View, size: usize) {
    let scale = (size / 256).max(1);
    let (cw, ch) = (6 * scale, 7 * scale);
    let m = 2 * scale;
    let (w, h) = (img.width, img.height);
    let [l, r, t, b] = view.edges;
    text(img, &format!("SLICE {k}"), m, m, scale);
    text(img, &l.to_string(), m, (h.saturating_sub(ch)) / 2, scale);
    text(
        img,
        &r.to_string(),
        w.saturating_sub(cw + m),
        (h.saturating_sub(ch)) / 2,
        scale,
    );
    text(img, &t.to_string(), (w.saturating_sub(cw)) / 2, m, scale);
    text(
        img,
        &b.to_string(),
        (w.saturating_sub(cw)) / 2,
        h.saturating_sub(ch + m),
        scale,
    );
    text(
        img,
        &format!("{l} LEFT {t} UP"),
        m,
        h.saturating_sub(ch + m),
        scale,
    );
}
