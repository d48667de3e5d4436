//! The pages' languages: every word a page shows comes from a Fluent message catalogue
//! (`locales/<lang>.ftl`, compiled into the binary), none from a template. The language is the
//! one the person chose with the switch (a cookie), else the best of `Accept-Language`, else
//! English.
//!
//! Both catalogues hold exactly the same messages, and every message a template or a page asks
//! for exists (tests below): a missing word is a failed build of the test suite, not an empty
//! button.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

/// A language the pages are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// English (the default).
    En,
    /// Spanish.
    Es,
}

/// The cookie that keeps the language chosen with the switch.
pub const LANG_COOKIE: &str = "tc_lang";

impl Lang {
    /// Every language, the default first.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Es];

    /// Its BCP 47 tag (the `lang` attribute, the cookie's value).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }

    /// The language with tag `tag` (its primary subtag: `es-ES` is Spanish).
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next()?.trim();
        Lang::ALL
            .into_iter()
            .find(|l| l.tag().eq_ignore_ascii_case(primary))
    }

    /// The language for a request: the cookie's if valid, else the `Accept-Language` entry
    /// with the highest weight that the pages speak, else English.
    pub fn choose(cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
        if let Some(lang) = cookie.and_then(Lang::from_tag) {
            return lang;
        }
        let mut best: Option<(Lang, f32)> = None;
        for item in accept_language.unwrap_or("").split(',').take(32) {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Lang::from_tag) else {
                continue;
            };
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
                .unwrap_or(0.0);
            if weight > 0.0 && best.is_none_or(|(_, w)| weight > w) {
                best = Some((lang, weight));
            }
        }
        best.map_or(Lang::En, |(lang, _)| lang)
    }

    fn source(self) -> &'static str {
        match self {
            Lang::En => include_str!("locales/en.ftl"),
            Lang::Es => include_str!("locales/es.ftl"),
        }
    }

    fn bundle(self) -> &'static FluentBundle<FluentResource> {
        static BUNDLES: OnceLock<Vec<FluentBundle<FluentResource>>> = OnceLock::new();
        let bundles = BUNDLES.get_or_init(|| {
            Lang::ALL
                .into_iter()
                .map(|lang| {
                    let id: LanguageIdentifier =
                        lang.tag().parse().expect("the language tags are valid");
                    let mut bundle = FluentBundle::new_concurrent(vec![id]);
                    // The pages are HTML: bidirectional isolation marks would only show up as
                    // stray characters in attributes.
                    bundle.set_use_isolating(false);
                    let resource = FluentResource::try_new(lang.source().to_owned())
                        .expect("the catalogues parse (tested)");
                    bundle
                        .add_resource(resource)
                        .expect("a catalogue defines each message once (tested)");
                    bundle
                })
                .collect()
        });
        &bundles[self as usize]
    }
}

/// The words of one page, in one language. Templates call [`Text::get`] and [`Text::with`].
#[derive(Clone, Copy, Debug)]
pub struct Text {
    /// The language.
    pub lang: Lang,
}

impl Text {
    /// Message `id`. A message missing from the catalogue shows as its id (tests keep that
    /// from happening).
    pub fn get(&self, id: &str) -> String {
        self.format(id, None)
    }

    /// Message `id` with the variable `name` set to `value`.
    pub fn with(&self, id: &str, name: &str, value: &dyn std::fmt::Display) -> String {
        self.with_args(id, &[(name, value)])
    }

    /// Message `id` with each variable `name` set to its `value`.
    pub fn with_args(&self, id: &str, values: &[(&str, &dyn std::fmt::Display)]) -> String {
        let mut args = FluentArgs::new();
        for (name, value) in values {
            args.set(*name, FluentValue::from(value.to_string()));
        }
        self.format(id, Some(&args))
    }

    fn format(&self, id: &str, args: Option<&FluentArgs>) -> String {
        let bundle = self.lang.bundle();
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            return id.to_owned();
        };
        let mut errors = Vec::new();
        bundle
            .format_pattern(pattern, args, &mut errors)
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use fluent_bundle::FluentResource;
    use fluent_syntax::ast::Entry;

    use super::*;

    fn ids(lang: Lang) -> BTreeSet<String> {
        let resource = FluentResource::try_new(lang.source().to_owned())
            .unwrap_or_else(|(_, errors)| panic!("{} does not parse: {errors:?}", lang.tag()));
        resource
            .entries()
            .filter_map(|e| match e {
                Entry::Message(m) => Some(m.id.name.to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn both_catalogues_hold_the_same_messages() {
        let en = ids(Lang::En);
        let es = ids(Lang::Es);
        assert!(!en.is_empty());
        assert_eq!(
            en.difference(&es).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "missing in es"
        );
        assert_eq!(
            es.difference(&en).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "missing in en"
        );
    }

    /// Every `t.get("…")`, `t.with("…"` and `text("…")` in the templates and the pages' code
    /// names a message; and no template holds words of its own outside them.
    #[test]
    fn every_message_asked_for_exists_and_templates_hold_no_words() {
        let en = ids(Lang::En);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut sources = Vec::new();
        for sub in ["templates/app", "src/pages", "src/pages/views"] {
            for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
                let path = entry.unwrap().path();
                // This file names the markers it looks for; the verifier page is one file that
                // must work alone, so it carries its own catalogue (both languages, in its script).
                // `field.html` holds attributes spliced into a field's tag, no words.
                let own_words = path.ends_with("i18n.rs")
                    || path.ends_with("verifier.html")
                    || path.ends_with("field.html");
                if !own_words && path.extension().is_some_and(|e| e == "html" || e == "rs") {
                    sources.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
        let mut asked = 0;
        for (path, text) in &sources {
            for marker in ["t.get(\"", "t.with(\"", "t.with_args(\"", "msg(\""] {
                for (at, _) in text.match_indices(marker) {
                    let rest = &text[at + marker.len()..];
                    let id = &rest[..rest.find('"').unwrap()];
                    assert!(en.contains(id), "{}: no message {id:?}", path.display());
                    asked += 1;
                }
            }
            if path.extension().is_some_and(|e| e == "html") {
                assert_eq!(
                    words_outside_tags(text),
                    Vec::<String>::new(),
                    "{}: words belong in the catalogues",
                    path.display()
                );
            }
        }
        assert!(asked > 20, "only {asked} messages asked for");
    }

    /// The words of a template outside its tags and its `{{ }}`, `{% %}` and `{# #}` parts.
    fn words_outside_tags(template: &str) -> Vec<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find(['<', '{']) {
            out.push_str(&rest[..start]);
            let close = match &rest[start..start + 2.min(rest.len() - start)] {
                "{{" => "}}",
                "{%" => "%}",
                "{#" => "#}",
                s if s.starts_with('<') => ">",
                _ => {
                    out.push('{');
                    rest = &rest[start + 1..];
                    continue;
                }
            };
            match rest[start..].find(close) {
                Some(end) => rest = &rest[start + end + close.len()..],
                None => break,
            }
        }
        out.split_whitespace()
            .filter(|w| w.chars().any(char::is_alphabetic))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_language_is_the_cookie_then_accept_language_then_english() {
        assert_eq!(Lang::choose(None, None), Lang::En);
        assert_eq!(
            Lang::choose(None, Some("es-ES,es;q=0.9,en;q=0.8")),
            Lang::Es
        );
        assert_eq!(Lang::choose(None, Some("fr, en;q=0.5, es;q=0.7")), Lang::Es);
        assert_eq!(Lang::choose(None, Some("es;q=0, en;q=0.1")), Lang::En);
        assert_eq!(Lang::choose(Some("en"), Some("es")), Lang::En);
        assert_eq!(Lang::choose(Some("xx"), Some("es")), Lang::Es);
        assert_eq!(Lang::choose(None, Some("de")), Lang::En);
    }

    #[test]
    fn variables_are_filled_in() {
        let t = Text { lang: Lang::Es };
        assert!(t.with("balance-hours", "hours", &"2:30").contains("2:30"));
    }
}
