//! QR codes as SVG, for what a member shows or carries: the card's number, a spend code. A
//! venue's device scans one instead of typing it.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// A QR code of `text` as a whole SVG document at least `size` units square, quiet zone
/// included (medium error correction: a worn card still scans). Empty if `text` is too long
/// for any QR code, which a card number or a spend code never is.
pub fn document(text: &str, size: u32) -> String {
    QrCode::with_error_correction_level(text, EcLevel::M)
        .map(|code| {
            code.render::<svg::Color<'_>>()
                .min_dimensions(size, size)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default()
}

/// [`document`] as a `data:` URI, for an `<img>` under the pages' content policy (images from
/// the page's own origin or `data:` only).
pub fn data_uri(text: &str, size: u32) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(document(text, size));
    format!("data:image/svg+xml;base64,{encoded}")
}

/// The drawing of the SVG `document` (the QR renderer's whole document) as an `<svg>` element
/// placed at (`x`, `y`) in a `size` square of the card: its own `viewBox` scales it, and its own
/// size and declaration are left out (a second `width` on one element makes the card invalid
/// XML, which a browser then refuses to show).
pub fn nested_at(document: &str, x: u32, y: u32, size: u32) -> String {
    let Some(start) = document.find("<svg") else {
        return String::new();
    };
    let open = &document[start..];
    let Some(tag_end) = open.find('>') else {
        return String::new();
    };
    let view_box = open[..tag_end]
        .split("viewBox=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("0 0 1 1");
    let inner = open[tag_end + 1..]
        .rsplit_once("</svg>")
        .map_or("", |(inner, _)| inner);
    format!(
        r#"<svg x="{x}" y="{y}" width="{size}" height="{size}" viewBox="{view_box}" shape-rendering="crispEdges">{inner}</svg>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_a_well_formed_document_and_nests_as_one_element() {
        let alone = document("7KQ2M9XD", 200);
        roxmltree::Document::parse(&alone).expect("well-formed XML");
        let nested = nested_at(&alone, 10, 20, 100);
        let parsed = roxmltree::Document::parse(&nested).expect("well-formed XML");
        let root = parsed.root_element();
        assert_eq!(root.attribute("x"), Some("10"));
        assert_eq!(root.attribute("width"), Some("100"));
        assert!(data_uri("7KQ2M9XD", 200).starts_with("data:image/svg+xml;base64,"));
    }
}
