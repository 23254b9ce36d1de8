//! Templates rendered for one contact (MA-1): handlebars over `{contact: …}`, parts included
//! as partials, snippets called with the `script` helper. The HTML part escapes what it
//! inserts; the subject, preheader and text parts do not (they are not HTML).
//!
//! Handlebars has no limit on partial depth, so a part that includes itself would overflow the
//! stack of the worker rendering it: part references must be plain names of saved parts, cycles
//! are refused, and decorators (`{{#*inline}}`, which can define recursive partials) are not
//! accepted.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderErrorReason, ScopedJson,
};
use rhai::Dynamic;
use serde_json::{Map, Value as Json, json};
use tabiji_model::content::{ContentError, ContentKind, Part, Rendered, Snippet, Template};

use super::script::{Sandbox, Script, ScriptError};

/// Why a template could not be rendered for a contact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("there is no template called {0:?}")]
    NoTemplate(String),
    #[error("template {template:?} is broken and was not loaded: {why}")]
    Broken { template: String, why: String },
    #[error("template {template:?}, {part}: {message}")]
    Failed {
        template: String,
        /// `subject`, `html`, … or `part footer`.
        part: String,
        message: String,
    },
}

/// Why a draft template could not be previewed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    /// What would refuse the save, each with where it is.
    #[error("the template would be refused: {}", describe(.0))]
    Invalid(Vec<ContentError>),
    #[error(transparent)]
    Render(RenderError),
}

fn describe(problems: &[ContentError]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.at, p.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The part of a template each handlebars name stands for.
const SECTIONS: [&str; 4] = ["subject", "preheader", "html", "text"];

fn section_name(key: &str, section: &str) -> String {
    format!("{key}#{section}")
}

thread_local! {
    /// The contact being rendered on this thread, converted once for every snippet it calls.
    static CONTACT: RefCell<Dynamic> = const { RefCell::new(Dynamic::UNIT) };
}

struct ScriptHelper {
    sandbox: Arc<Sandbox>,
    snippets: Arc<HashMap<String, Script>>,
}

impl HelperDef for ScriptHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, handlebars::RenderError> {
        let name = h.param(0).and_then(|p| p.value().as_str()).ok_or_else(|| {
            RenderErrorReason::Other(
                "script needs the snippet's name first: {{script \"name\" …}}".into(),
            )
        })?;
        let script = self.snippets.get(name).ok_or_else(|| {
            RenderErrorReason::Other(format!("there is no snippet called {name:?}"))
        })?;
        let args: Vec<Json> = h.params()[1..].iter().map(|p| p.value().clone()).collect();
        let value = CONTACT
            .with(|c| self.sandbox.run(script, &c.borrow(), &args))
            .map_err(|e| RenderErrorReason::Other(format!("snippet {name:?}: {e}")))?;
        Ok(ScopedJson::Derived(value))
    }
}

/// How deeply blocks (`{{#if}}…{{/if}}`) and subexpressions may nest: handlebars parses and
/// renders them recursively, and a few thousand levels would overflow a thread's stack.
pub const MAX_NESTING: usize = 48;

/// How long a chain of parts including parts may be, and how large a template may grow once
/// its parts are included (counting each inclusion): parts that include others several
/// times would otherwise multiply the output beyond any memory.
pub const MAX_PART_DEPTH: usize = 8;
pub const MAX_EXPANDED_BYTES: usize = 2 * 1024 * 1024;

/// The text of a tag after `{{`, without the marks and spaces handlebars allows before its
/// first word (`{{~`, `{{{`, `{{ #`, …): `("#", rest)` for a block, `(">", rest)` for a part.
fn tag_kind(tag: &str) -> (String, &str) {
    let mut rest = tag;
    let mut marks = String::new();
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c == '{' || c == '~' || c.is_whitespace());
        match trimmed.chars().next() {
            Some(c @ ('#' | '>' | '*' | '/' | '^' | '!')) => {
                marks.push(c);
                rest = &trimmed[c.len_utf8()..];
            }
            _ => return (marks, trimmed),
        }
    }
}

/// Every part reference (`{{> name}}`, `{{#> name}}`) in a source, or what is wrong with one.
/// Also refuses decorators and blocks nested deeper than [`MAX_NESTING`].
fn part_references(source: &str) -> Result<BTreeSet<String>, String> {
    let mut found = BTreeSet::new();
    let mut depth: usize = 0;
    let mut rest = source;
    while let Some(start) = rest.find("{{") {
        let tag = &rest[start + 2..];
        rest = tag;
        let (marks, after) = tag_kind(tag);
        if marks.contains('*') {
            return Err(
                "decorators such as {{#*inline}} are not supported: save the content as a part"
                    .into(),
            );
        }
        if marks.starts_with('!') {
            continue;
        }
        let inner = &after[..after.find("}}").unwrap_or(after.len())];
        let parens = inner.matches('(').count();
        if marks.starts_with('#') || marks.starts_with('^') {
            depth += 1;
        } else if marks.starts_with('/') {
            depth = depth.saturating_sub(1);
        }
        if depth + parens > MAX_NESTING {
            return Err(format!(
                "blocks and subexpressions nest deeper than {MAX_NESTING} levels"
            ));
        }
        if !marks.contains('>') {
            continue;
        }
        let name: String = after
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '}' && *c != '~')
            .collect();
        if name == "@partial-block" {
            continue;
        }
        if tabiji_model::content::check_key(&name).is_err() {
            return Err(format!(
                "include parts by their saved key, such as {{{{> footer}}}} (not {name:?})"
            ));
        }
        found.insert(name);
    }
    Ok(found)
}

/// Every snippet named literally in `{{script "name"}}` (names computed at render time are
/// checked then).
fn snippet_references(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = source;
    while let Some(start) = rest.find("script") {
        rest = &rest[start + "script".len()..];
        let quoted = rest.trim_start();
        if quoted.len() < rest.len()
            && let Some(body) = quoted.strip_prefix('"')
            && let Some(end) = body.find('"')
        {
            found.insert(body[..end].to_string());
        }
    }
    found
}

fn template_error(at: &str, e: &handlebars::TemplateError) -> ContentError {
    let place = match e.pos() {
        Some((line, column)) => format!("line {line}, column {column}: "),
        None => String::new(),
    };
    ContentError {
        at: at.to_string(),
        code: "syntax",
        message: format!("{place}{}", e.reason()),
    }
}

fn script_error(at: &str, e: &ScriptError) -> ContentError {
    ContentError {
        at: at.to_string(),
        code: if e.code == "syntax" { "syntax" } else { e.code },
        message: e.to_string(),
    }
}

fn problem(at: &str, code: &'static str, message: impl Into<String>) -> ContentError {
    ContentError {
        at: at.to_string(),
        code,
        message: message.into(),
    }
}

/// Every saved template, part and snippet, compiled, ready to render for any contact.
pub struct Library {
    sandbox: Arc<Sandbox>,
    snippets: Arc<HashMap<String, Script>>,
    parts: BTreeMap<String, Part>,
    templates: HashMap<String, Template>,
    /// Templates that did not compile, with why (a send naming one fails with the reason).
    broken: HashMap<String, String>,
    html: Handlebars<'static>,
    plain: Handlebars<'static>,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("templates", &self.templates.len())
            .field("parts", &self.parts.len())
            .field("snippets", &self.snippets.len())
            .finish()
    }
}

/// One saved item as storage hands it over.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: ContentKind,
    pub key: String,
    pub definition: Json,
}

fn registries(
    sandbox: &Arc<Sandbox>,
    snippets: &Arc<HashMap<String, Script>>,
) -> [Handlebars<'static>; 2] {
    [true, false].map(|escaped| {
        let mut registry = Handlebars::new();
        if !escaped {
            registry.register_escape_fn(handlebars::no_escape);
        }
        registry.register_helper(
            "script",
            Box::new(ScriptHelper {
                sandbox: sandbox.clone(),
                snippets: snippets.clone(),
            }),
        );
        registry
    })
}

/// The first cycle of part references reachable from `start`, or a chain longer than
/// [`MAX_PART_DEPTH`]. Each part is explored once.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut cycle = path[i..].to_vec();
            cycle.push(at.to_string());
            return Some(cycle);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_string());
        if path.len() > MAX_PART_DEPTH + 1 {
            return Some(path.clone());
        }
        for next in graph.get(at).into_iter().flatten() {
            if let Some(cycle) = walk(graph, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(at.to_string());
        None
    }
    walk(graph, start, &mut Vec::new(), &mut BTreeSet::new())
}

/// What [`find_cycle`] found, in words.
fn describe_chain(chain: &[String]) -> String {
    let joined = chain.join(" → ");
    if chain.len() > 1 && chain[..chain.len() - 1].contains(&chain[chain.len() - 1]) {
        format!("would include itself: {joined}")
    } else {
        format!("parts include parts more than {MAX_PART_DEPTH} deep: {joined}")
    }
}

/// How large `source` grows once every part it includes is included (each time it is).
fn expanded_size(
    own: usize,
    refs: &BTreeSet<String>,
    source: &str,
    parts: &BTreeMap<String, Part>,
    memo: &mut BTreeMap<String, usize>,
) -> usize {
    let mut total = own;
    for name in refs {
        let times = source.matches(&format!("> {name}")).count().max(1)
            + source.matches(&format!(">{name}")).count();
        let size = match memo.get(name) {
            Some(size) => *size,
            None => {
                let size = match parts.get(name) {
                    Some(part) => {
                        let inner = part_references(&part.body).unwrap_or_default();
                        memo.insert(name.clone(), 0);
                        expanded_size(part.body.len(), &inner, &part.body, parts, memo)
                    }
                    None => 0,
                };
                memo.insert(name.clone(), size);
                size
            }
        };
        total = total.saturating_add(size.saturating_mul(times));
    }
    total
}

fn too_large(at: &str, size: usize) -> Option<ContentError> {
    (size > MAX_EXPANDED_BYTES).then(|| {
        problem(
            at,
            "too_large",
            format!(
                "grows to {size} bytes once its parts are included; at most {MAX_EXPANDED_BYTES} are accepted"
            ),
        )
    })
}

impl Library {
    /// Compiles everything saved. An item that does not compile is left out (a template with
    /// its reason, so sends naming it fail saying why) and reported; the rest still work.
    pub fn build(
        sandbox: Arc<Sandbox>,
        items: &[Item],
    ) -> (Library, Vec<(Item, Vec<ContentError>)>) {
        let mut rejected = Vec::new();
        let mut snippets = HashMap::new();
        for item in items.iter().filter(|i| i.kind == ContentKind::Snippet) {
            let compiled = serde_json::from_value::<Snippet>(item.definition.clone())
                .map_err(|e| vec![problem("", "invalid", e.to_string())])
                .and_then(|s| {
                    sandbox
                        .compile(&s.source)
                        .map_err(|e| vec![script_error("source", &e)])
                });
            match compiled {
                Ok(script) => {
                    snippets.insert(item.key.clone(), script);
                }
                Err(problems) => rejected.push((item.clone(), problems)),
            }
        }
        let snippets = Arc::new(snippets);
        let [mut html, mut plain] = registries(&sandbox, &snippets);

        let mut parts = BTreeMap::new();
        let mut graph = BTreeMap::new();
        for item in items.iter().filter(|i| i.kind == ContentKind::Part) {
            match serde_json::from_value::<Part>(item.definition.clone()) {
                Ok(part) => match part_references(&part.body) {
                    Ok(refs) => {
                        graph.insert(item.key.clone(), refs);
                        parts.insert(item.key.clone(), part);
                    }
                    Err(why) => rejected.push((item.clone(), vec![problem("body", "syntax", why)])),
                },
                Err(e) => {
                    rejected.push((item.clone(), vec![problem("", "invalid", e.to_string())]))
                }
            }
        }
        // Parts in a cycle, or including a missing part, are left out, and so on up.
        loop {
            let bad: Vec<(String, String)> = graph
                .iter()
                .filter_map(|(key, refs)| {
                    if let Some(missing) = refs.iter().find(|r| !graph.contains_key(*r)) {
                        return Some((
                            key.clone(),
                            format!("includes {missing:?}, which is not a saved part"),
                        ));
                    }
                    if let Some(chain) = find_cycle(&graph, key) {
                        return Some((key.clone(), describe_chain(&chain)));
                    }
                    let part = &parts[key];
                    let size = expanded_size(
                        part.body.len(),
                        refs,
                        &part.body,
                        &parts,
                        &mut BTreeMap::new(),
                    );
                    too_large("body", size).map(|e| (key.clone(), e.message))
                })
                .collect();
            if bad.is_empty() {
                break;
            }
            for (key, why) in bad {
                graph.remove(&key);
                parts.remove(&key);
                let item = items
                    .iter()
                    .find(|i| i.kind == ContentKind::Part && i.key == key)
                    .expect("from the items")
                    .clone();
                rejected.push((item, vec![problem("body", "part_cycle", why)]));
            }
        }
        for (key, part) in &parts {
            let registered = html
                .register_partial(key, &part.body)
                .and_then(|()| plain.register_partial(key, &part.body));
            if let Err(e) = registered {
                let item = items
                    .iter()
                    .find(|i| i.kind == ContentKind::Part && &i.key == key)
                    .expect("from the items")
                    .clone();
                rejected.push((item, vec![template_error("body", &e)]));
            }
        }

        let mut templates = HashMap::new();
        let mut broken = HashMap::new();
        for item in items.iter().filter(|i| i.kind == ContentKind::Template) {
            let problems = match serde_json::from_value::<Template>(item.definition.clone()) {
                Ok(template) => {
                    let problems = register(
                        &mut html, &mut plain, &item.key, &template, &parts, &snippets,
                    );
                    if problems.is_empty() {
                        templates.insert(item.key.clone(), template);
                    }
                    problems
                }
                Err(e) => vec![problem("", "invalid", e.to_string())],
            };
            if !problems.is_empty() {
                let why = problems
                    .iter()
                    .map(|p| format!("{}: {}", p.at, p.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                broken.insert(item.key.clone(), why);
                rejected.push((item.clone(), problems));
            }
        }
        let library = Library {
            sandbox,
            snippets,
            parts,
            templates,
            broken,
            html,
            plain,
        };
        (library, rejected)
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// The channel of template `key`, or why it cannot be sent.
    pub fn template_channel(&self, key: &str) -> Result<tabiji_model::flow::Channel, RenderError> {
        match self.templates.get(key) {
            Some(template) => Ok(template.channel),
            None => Err(match self.broken.get(key) {
                Some(why) => RenderError::Broken {
                    template: key.to_string(),
                    why: why.clone(),
                },
                None => RenderError::NoTemplate(key.to_string()),
            }),
        }
    }

    /// Whether snippet `key` is saved and compiles.
    pub fn has_snippet(&self, key: &str) -> bool {
        self.snippets.contains_key(key)
    }

    /// Every problem `definition` would have if saved as `key` into this library: its shape,
    /// its syntax (with line and column), the parts and snippets it names, and part cycles.
    pub fn check(&self, kind: ContentKind, key: &str, definition: &Json) -> Vec<ContentError> {
        match kind {
            ContentKind::Snippet => match serde_json::from_value::<Snippet>(definition.clone()) {
                Err(e) => vec![problem("", "invalid", e.to_string())],
                Ok(snippet) => {
                    let mut problems = snippet.check();
                    if problems.is_empty()
                        && let Err(e) = self.sandbox.compile(&snippet.source)
                    {
                        problems.push(script_error("source", &e));
                    }
                    problems
                }
            },
            ContentKind::Part => match serde_json::from_value::<Part>(definition.clone()) {
                Err(e) => vec![problem("", "invalid", e.to_string())],
                Ok(part) => {
                    let mut problems = part.check();
                    if !problems.is_empty() {
                        return problems;
                    }
                    // The nesting check first: compiling a deeply nested body is what overflows.
                    let refs = match part_references(&part.body) {
                        Ok(refs) => refs,
                        Err(why) => return vec![problem("body", "syntax", why)],
                    };
                    if let Err(e) = handlebars::Template::compile(&part.body) {
                        return vec![template_error("body", &e)];
                    }
                    let mut graph: BTreeMap<String, BTreeSet<String>> = self
                        .parts
                        .iter()
                        .map(|(k, p)| (k.clone(), part_references(&p.body).unwrap_or_default()))
                        .collect();
                    for missing in refs.iter().filter(|r| *r != key && !graph.contains_key(*r)) {
                        problems.push(problem(
                            "body",
                            "unknown_part",
                            format!("includes {missing:?}, which is not a saved part"),
                        ));
                    }
                    graph.insert(key.to_string(), refs.clone());
                    let mut parts = self.parts.clone();
                    parts.insert(key.to_string(), part.clone());
                    if let Some(cycle) = find_cycle(&graph, key) {
                        problems.push(problem("body", "part_cycle", describe_chain(&cycle)));
                    } else if let Some(e) = too_large(
                        "body",
                        expanded_size(
                            part.body.len(),
                            &refs,
                            &part.body,
                            &parts,
                            &mut BTreeMap::new(),
                        ),
                    ) {
                        problems.push(e);
                    }
                    problems.extend(unknown_snippets("body", &part.body, &self.snippets));
                    problems
                }
            },
            ContentKind::Template => {
                let [html, plain] = registries(&self.sandbox, &self.snippets);
                self.compile_template(key, definition, html, plain)
                    .err()
                    .unwrap_or_default()
            }
        }
    }

    /// A template definition compiled as `key` into the registries given (fresh ones for a
    /// check, the library's own for a draft's preview), or every problem that would refuse it.
    fn compile_template(
        &self,
        key: &str,
        definition: &Json,
        mut html: Handlebars<'static>,
        mut plain: Handlebars<'static>,
    ) -> Result<(Template, Handlebars<'static>, Handlebars<'static>), Vec<ContentError>> {
        let template = serde_json::from_value::<Template>(definition.clone())
            .map_err(|e| vec![problem("", "invalid", e.to_string())])?;
        let problems = template.check();
        if !problems.is_empty() {
            return Err(problems);
        }
        let problems = register(
            &mut html,
            &mut plain,
            key,
            &template,
            &self.parts,
            &self.snippets,
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok((template, html, plain))
    }

    /// Renders template `key` for a contact (its fields by key).
    pub fn render(&self, key: &str, contact: &Map<String, Json>) -> Result<Rendered, RenderError> {
        let Some(template) = self.templates.get(key) else {
            return Err(match self.broken.get(key) {
                Some(why) => RenderError::Broken {
                    template: key.to_string(),
                    why: why.clone(),
                },
                None => RenderError::NoTemplate(key.to_string()),
            });
        };
        self.sandbox
            .for_one_message(|| render_now(&self.html, &self.plain, key, template, contact))
    }

    /// Renders a definition that is not saved (the template editor's preview) as it would
    /// render once saved as `key`, with the saved parts and snippets; what would refuse the
    /// save refuses the preview.
    pub fn render_draft(
        &self,
        key: &str,
        definition: &Json,
        contact: &Map<String, Json>,
    ) -> Result<Rendered, DraftError> {
        let (mut html, mut plain) = (self.html.clone(), self.plain.clone());
        // The saved version's sections go first: a section the draft leaves empty is not
        // registered, and the saved one must not show through.
        let prefix = section_name(key, "");
        for registry in [&mut html, &mut plain] {
            let saved: Vec<String> = registry
                .get_templates()
                .keys()
                .filter(|name| name.starts_with(&prefix))
                .cloned()
                .collect();
            for name in saved {
                registry.unregister_template(&name);
            }
        }
        let (template, html, plain) = self
            .compile_template(key, definition, html, plain)
            .map_err(DraftError::Invalid)?;
        self.sandbox
            .for_one_message(|| render_now(&html, &plain, key, &template, contact))
            .map_err(DraftError::Render)
    }

    /// Runs a snippet's source (saved or not) for a contact: the test-run of the snippet editor.
    pub fn try_snippet(
        &self,
        source: &str,
        contact: &Map<String, Json>,
        args: &[Json],
    ) -> Result<Json, ScriptError> {
        let script = self.sandbox.compile(source)?;
        self.sandbox.run(&script, &Sandbox::contact(contact), args)
    }
}

impl crate::machine::Conditions for Library {
    fn holds(
        &self,
        snippet: &str,
        args: &[Json],
        contact: &Map<String, Json>,
    ) -> Result<bool, String> {
        let script = self
            .snippets
            .get(snippet)
            .ok_or_else(|| format!("there is no snippet called {snippet:?}"))?;
        let value = self
            .sandbox
            .run(script, &Sandbox::contact(contact), args)
            .map_err(|e| format!("snippet {snippet:?}: {e}"))?;
        value
            .as_bool()
            .ok_or_else(|| format!("snippet {snippet:?} gave {value}, not true or false"))
    }
}

/// Renders the registered sections of template `key` for a contact.
fn render_now(
    html: &Handlebars<'static>,
    plain: &Handlebars<'static>,
    key: &str,
    template: &Template,
    contact: &Map<String, Json>,
) -> Result<Rendered, RenderError> {
    CONTACT.with(|c| *c.borrow_mut() = Sandbox::contact(contact));
    let data = json!({ "contact": contact, "unsubscribe_url": super::UNSUBSCRIBE_PLACEHOLDER });
    let render = |registry: &Handlebars<'static>, section: &str| {
        let name = section_name(key, section);
        if !registry.has_template(&name) {
            return Ok(String::new());
        }
        registry
            .render(&name, &data)
            .map_err(|e| RenderError::Failed {
                template: key.to_string(),
                part: match &e.template_name {
                    Some(n) if n != &name => format!("part {n}"),
                    _ => section.to_string(),
                },
                message: match (e.line_no, e.column_no) {
                    (Some(l), Some(c)) => format!("line {l}, column {c}: {}", e.reason()),
                    _ => e.reason().to_string(),
                },
            })
    };
    let result = (|| {
        let subject = render(plain, "subject")?;
        let preheader = render(plain, "preheader")?;
        let body = render(html, "html")?;
        let text = render(plain, "text")?;
        let flex = match &template.flex {
            Some(flex) => {
                let mut flex = flex.clone();
                render_flex(&mut flex, "flex".into(), &mut |at| render(plain, at))?;
                Some(flex)
            }
            None => None,
        };
        Ok(Rendered {
            channel: template.channel,
            html: with_preheader(&body, &preheader),
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            preheader,
            text,
            flex,
        })
    })();
    CONTACT.with(|c| *c.borrow_mut() = Dynamic::UNIT);
    result
}

fn unknown_snippets(
    at: &str,
    source: &str,
    snippets: &HashMap<String, Script>,
) -> Vec<ContentError> {
    snippet_references(source)
        .into_iter()
        .filter(|name| !snippets.contains_key(name))
        .map(|name| {
            problem(
                at,
                "unknown_snippet",
                format!("calls snippet {name:?}, which is not saved"),
            )
        })
        .collect()
}

/// A key as a JSON Pointer writes it (`~` as `~0`, `/` as `~1`), so no two places share a name.
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The most strings a flex container may hold (each is a template).
pub const MAX_FLEX_STRINGS: usize = 2_000;

/// Every string in a LINE flex container with where it sits (`flex/body/contents/0/text`), in
/// the order [`render_flex`] visits them.
fn flex_strings<'a>(value: &'a Json, at: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Json::String(s) => out.push((at, s)),
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flex_strings(item, format!("{at}/{i}"), out);
            }
        }
        Json::Object(fields) => {
            for (name, item) in fields {
                flex_strings(item, format!("{at}/{}", pointer_token(name)), out);
            }
        }
        _ => {}
    }
}

/// Renders every string of a flex container in place; each stays one JSON string whatever the
/// contact's data holds.
fn render_flex(
    value: &mut Json,
    at: String,
    render: &mut dyn FnMut(&str) -> Result<String, RenderError>,
) -> Result<(), RenderError> {
    match value {
        Json::String(s) => *s = render(&at)?,
        Json::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                render_flex(item, format!("{at}/{i}"), render)?;
            }
        }
        Json::Object(fields) => {
            for (name, item) in fields.iter_mut() {
                render_flex(item, format!("{at}/{}", pointer_token(name)), render)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Registers each non-empty section of a template (and each string of a LINE flex
/// container); returns what is wrong with any.
fn register(
    html: &mut Handlebars<'static>,
    plain: &mut Handlebars<'static>,
    key: &str,
    template: &Template,
    parts: &BTreeMap<String, Part>,
    snippets: &HashMap<String, Script>,
) -> Vec<ContentError> {
    let mut problems = Vec::new();
    let mut sections: Vec<(String, &str)> = SECTIONS
        .iter()
        .map(|&section| {
            let source = match section {
                "subject" => &template.subject,
                "preheader" => &template.preheader,
                "html" => &template.html,
                _ => &template.text,
            };
            (section.to_string(), source.as_str())
        })
        .collect();
    if let Some(flex) = &template.flex {
        let before = sections.len();
        flex_strings(flex, "flex".into(), &mut sections);
        let strings = sections.len() - before;
        if strings > MAX_FLEX_STRINGS {
            return vec![problem(
                "flex",
                "too_large",
                format!("holds {strings} strings; at most {MAX_FLEX_STRINGS} are accepted"),
            )];
        }
        // The cap holds for the whole message, not per string.
        let total: usize = sections[before..]
            .iter()
            .filter_map(|(_, source)| {
                part_references(source).ok().map(|refs| {
                    expanded_size(source.len(), &refs, source, parts, &mut BTreeMap::new())
                })
            })
            .sum();
        if let Some(e) = too_large("flex", total) {
            return vec![e];
        }
    }
    for (section, source) in sections {
        let section = section.as_str();
        if source.is_empty() {
            continue;
        }
        match part_references(source) {
            Ok(refs) => {
                for missing in refs.iter().filter(|r| !parts.contains_key(*r)) {
                    problems.push(problem(
                        section,
                        "unknown_part",
                        format!("includes {missing:?}, which is not a saved part"),
                    ));
                }
                let size = expanded_size(source.len(), &refs, source, parts, &mut BTreeMap::new());
                problems.extend(too_large(section, size));
            }
            Err(why) => {
                // Not compiled: a body nested too deeply is what would overflow the stack.
                problems.push(problem(section, "syntax", why));
                continue;
            }
        }
        problems.extend(unknown_snippets(section, source, snippets));
        let registry = if section == "html" {
            &mut *html
        } else {
            &mut *plain
        };
        if let Err(e) = registry.register_template_string(&section_name(key, section), source) {
            problems.push(template_error(section, &e));
        }
    }
    problems
}

/// The preheader as the first thing in the body, hidden from view.
fn with_preheader(html: &str, preheader: &str) -> String {
    if html.is_empty() || preheader.is_empty() {
        return html.to_string();
    }
    let hidden = format!(
        "<div style=\"display:none;max-height:0;overflow:hidden;mso-hide:all\">{}</div>",
        handlebars::html_escape(preheader)
    );
    let lower = html.to_ascii_lowercase();
    match lower
        .find("<body")
        .and_then(|at| lower[at..].find('>').map(|end| at + end + 1))
    {
        Some(after_body) => format!("{}{hidden}{}", &html[..after_body], &html[after_body..]),
        None => format!("{hidden}{html}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: ContentKind, key: &str, definition: Json) -> Item {
        Item {
            kind,
            key: key.into(),
            definition,
        }
    }

    fn library(items: &[Item]) -> Library {
        let (library, rejected) = Library::build(Arc::new(Sandbox::default()), items);
        assert!(rejected.is_empty(), "{rejected:?}");
        library
    }

    fn hanako() -> Map<String, Json> {
        json!({"first_name": "花子", "last_name": "<b>山田</b>", "points": 1500, "prefecture": "愛知県"})
            .as_object()
            .unwrap()
            .clone()
    }

    fn autumn() -> Vec<Item> {
        vec![
            item(
                ContentKind::Snippet,
                "greeting",
                json!({"source": r#"if contact.points >= 1000 { `${contact.first_name}様 (ゴールド会員)` } else { `${contact.first_name}様` }"#}),
            ),
            item(
                ContentKind::Snippet,
                "season",
                json!({"source": "args[0] + \"の旅\""}),
            ),
            item(
                ContentKind::Part,
                "footer",
                json!({"body": "配信停止はこちら {{> legal}}"}),
            ),
            item(ContentKind::Part, "legal", json!({"body": "© 観光協会"})),
            item(
                ContentKind::Template,
                "autumn-1",
                json!({
                    "channel": "email",
                    "subject": "{{script \"greeting\"}}、{{script \"season\" \"秋\"}}のご案内",
                    "preheader": "{{contact.prefecture}}から紅葉へ",
                    "html": "<html><body><p>{{contact.last_name}}様</p>{{> footer}}</body></html>",
                    "text": "{{contact.last_name}}様\n{{> footer}}"
                }),
            ),
        ]
    }

    #[test]
    fn a_template_renders_with_snippets_and_parts() {
        let rendered = library(&autumn()).render("autumn-1", &hanako()).unwrap();
        assert_eq!(rendered.subject, "花子様 (ゴールド会員)、秋の旅のご案内");
        assert_eq!(rendered.preheader, "愛知県から紅葉へ");
        assert!(
            rendered
                .html
                .starts_with("<html><body><div style=\"display:none"),
            "{}",
            rendered.html
        );
        assert!(
            rendered
                .html
                .contains("<p>&lt;b&gt;山田&lt;/b&gt;様</p>配信停止はこちら © 観光協会"),
            "{}",
            rendered.html
        );
        assert_eq!(rendered.text, "<b>山田</b>様\n配信停止はこちら © 観光協会");
    }

    #[test]
    fn a_draft_renders_with_saved_parts_and_none_of_the_saved_versions_sections() {
        let lib = library(&autumn());
        let draft = json!({
            "channel": "email",
            "subject": "{{script \"season\" \"冬\"}}のご案内",
            "text": "{{contact.first_name}}様\n{{> footer}}"
        });
        let rendered = lib.render_draft("autumn-1", &draft, &hanako()).unwrap();
        assert_eq!(rendered.subject, "冬の旅のご案内");
        assert_eq!(rendered.text, "花子様\n配信停止はこちら © 観光協会");
        assert_eq!(
            rendered.html, "",
            "the saved HTML part does not show through"
        );
        assert_eq!(rendered.preheader, "");
        let saved = lib.render("autumn-1", &hanako()).unwrap();
        assert_eq!(
            saved.subject, "花子様 (ゴールド会員)、秋の旅のご案内",
            "the saved version is untouched"
        );

        let new = lib
            .render_draft(
                "new-one",
                &json!({"channel": "sms", "text": "{{contact.prefecture}}"}),
                &hanako(),
            )
            .unwrap();
        assert_eq!(new.text, "愛知県");

        let Err(DraftError::Invalid(problems)) = lib.render_draft(
            "autumn-1",
            &json!({"channel": "email", "subject": "x", "html": "{{> nowhere}}{{#if}}"}),
            &hanako(),
        ) else {
            panic!("a draft that would be refused is not rendered")
        };
        assert!(problems.iter().all(|p| p.at == "html"), "{problems:?}");
        assert!(
            problems.iter().any(|p| p.code == "unknown_part"),
            "{problems:?}"
        );

        let failed = lib.render_draft(
            "autumn-1",
            &json!({"channel": "sms", "text": "{{script \"season\"}}"}),
            &hanako(),
        );
        assert!(
            matches!(&failed, Err(DraftError::Render(RenderError::Failed { part, .. })) if part == "text"),
            "{failed:?}"
        );
    }

    #[test]
    fn every_string_of_a_flex_message_is_rendered_and_stays_a_string() {
        let mut items = autumn();
        items.push(item(
            ContentKind::Template,
            "line-autumn",
            json!({
                "channel": "line",
                "text": "{{script \"greeting\"}}へ秋のご案内",
                "flex": {"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": [
                    {"type": "text", "text": "{{contact.last_name}}様", "size": "xl"},
                    {"type": "text", "text": "{{> legal}}", "wrap": true}
                ]}}
            }),
        ));
        let mut hanako = hanako();
        hanako.insert("last_name".into(), json!("\"}]} 山田"));
        let rendered = library(&items).render("line-autumn", &hanako).unwrap();
        assert_eq!(rendered.text, "花子様 (ゴールド会員)へ秋のご案内");
        assert_eq!(
            rendered.flex.unwrap(),
            json!({"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": [
                {"type": "text", "text": "\"}]} 山田様", "size": "xl"},
                {"type": "text", "text": "© 観光協会", "wrap": true}
            ]}})
        );
        let broken = json!({"channel": "line", "text": "x",
            "flex": {"type": "bubble", "body": {"contents": [{"text": "{{#if}}"}, {"text": "{{> nowhere}}"}]}}});
        let found: Vec<_> = library(&autumn())
            .check(ContentKind::Template, "t", &broken)
            .into_iter()
            .map(|e| (e.at, e.code))
            .collect();
        assert_eq!(
            found,
            vec![
                ("flex/body/contents/0/text".to_string(), "syntax"),
                ("flex/body/contents/1/text".to_string(), "unknown_part")
            ]
        );
    }

    #[test]
    fn a_flex_message_is_capped_as_a_whole() {
        let mut items = autumn();
        items.push(item(
            ContentKind::Part,
            "big",
            json!({"body": "x".repeat(200 * 1024)}),
        ));
        let library = library(&items);
        let many_parts: Vec<Json> = (0..11).map(|_| json!({"text": "{{> big}}"})).collect();
        let code = |flex: Json| {
            library
                .check(
                    ContentKind::Template,
                    "t",
                    &json!({"channel": "line", "text": "x", "flex": flex}),
                )
                .into_iter()
                .map(|e| (e.at, e.code))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            code(json!({"type": "bubble", "contents": many_parts})),
            vec![("flex".to_string(), "too_large")]
        );
        let many_strings: Vec<Json> = (0..=MAX_FLEX_STRINGS)
            .map(|i| json!(i.to_string()))
            .collect();
        assert_eq!(
            code(json!({"type": "carousel", "contents": many_strings})),
            vec![("flex".to_string(), "too_large")]
        );
        // Keys holding "/" cannot make two strings share a name.
        let tricky = json!({"type": "bubble", "a/b": "{{contact.first_name}}", "a": {"b": "{{contact.last_name}}"}});
        assert!(code(tricky.clone()).is_empty());
        let mut items = autumn();
        items.push(item(
            ContentKind::Template,
            "tricky",
            json!({"channel": "line", "text": "x", "flex": tricky}),
        ));
        let rendered = self::library(&items).render("tricky", &hanako()).unwrap();
        let flex = rendered.flex.unwrap();
        assert_eq!(
            (flex["a/b"].as_str(), flex["a"]["b"].as_str()),
            (Some("花子"), Some("<b>山田</b>"))
        );
    }

    #[test]
    fn a_failing_snippet_names_the_template_section_and_snippet() {
        let mut items = autumn();
        items.push(item(
            ContentKind::Snippet,
            "boom",
            json!({"source": "throw \"no coupon left\""}),
        ));
        items.push(item(
            ContentKind::Template,
            "t",
            json!({"channel": "sms", "text": "{{script \"boom\"}}"}),
        ));
        let e = library(&items).render("t", &hanako()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("template \"t\", text")
                && text.contains("snippet \"boom\"")
                && text.contains("no coupon left"),
            "{text}"
        );
    }

    #[test]
    fn checks_name_syntax_errors_and_missing_references() {
        let lib = library(&autumn());
        let found = lib.check(
            ContentKind::Template,
            "new",
            &json!({"channel": "email", "subject": "{{#if contact.x}}", "html": "{{> nope}} {{script \"missing\"}}"}),
        );
        let codes: Vec<_> = found.iter().map(|e| (e.at.as_str(), e.code)).collect();
        assert_eq!(
            codes,
            vec![
                ("subject", "syntax"),
                ("html", "unknown_part"),
                ("html", "unknown_snippet")
            ]
        );
        assert!(
            found[0].message.starts_with("line 1, column"),
            "{}",
            found[0].message
        );

        let snippet = lib.check(ContentKind::Snippet, "s", &json!({"source": "let x = ;"}));
        assert_eq!(snippet[0].code, "syntax");
        assert!(
            snippet[0].message.starts_with("line 1, column"),
            "{}",
            snippet[0].message
        );
    }

    #[test]
    fn parts_that_include_themselves_are_refused() {
        let lib = library(&autumn());
        let found = lib.check(ContentKind::Part, "legal", &json!({"body": "{{> footer}}"}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].code, "part_cycle");
        assert!(
            found[0].message.contains("legal → footer → legal"),
            "{}",
            found[0].message
        );
        let itself = lib.check(ContentKind::Part, "loop", &json!({"body": "{{> loop}}"}));
        assert_eq!(itself[0].code, "part_cycle");
        let inline = lib.check(
            ContentKind::Part,
            "sneaky",
            &json!({"body": "{{#*inline \"x\"}}{{> x}}{{/inline}}{{> x}}"}),
        );
        assert_eq!(inline[0].code, "syntax");
    }

    #[test]
    fn part_tags_with_spaces_or_odd_names_cannot_hide_a_cycle() {
        let lib = library(&autumn());
        for body in [
            "{{ ~> legal}}",
            "{{# > legal}}x{{/legal}}",
            "{{~ >legal ~}}",
        ] {
            let found = lib.check(ContentKind::Part, "legal", &json!({ "body": body }));
            assert_eq!(
                found.first().map(|e| e.code),
                Some("part_cycle"),
                "{body}: {found:?}"
            );
        }
        for body in [
            "{{# *inline \"x\"}}{{/inline}}",
            "{{ ~> (lookup contact \"p\")}}",
            "{{> a.b}}",
        ] {
            let found = lib.check(ContentKind::Part, "odd", &json!({ "body": body }));
            assert_eq!(
                found.first().map(|e| e.code),
                Some("syntax"),
                "{body}: {found:?}"
            );
        }
    }

    #[test]
    fn deeply_nested_blocks_are_refused_before_compiling() {
        let lib = library(&autumn());
        let deep = format!(
            "{}x{}",
            "{{#if contact.a}}".repeat(10_000),
            "{{/if}}".repeat(10_000)
        );
        for kind in [ContentKind::Part, ContentKind::Template] {
            let definition = match kind {
                ContentKind::Part => json!({ "body": deep }),
                _ => json!({"channel": "sms", "text": deep}),
            };
            let found = lib.check(kind, "deep", &definition);
            assert!(
                found.iter().any(|e| e.message.contains("nest deeper")),
                "{found:?}"
            );
        }
        let fine = format!(
            "{}x{}",
            "{{#if contact.a}}".repeat(20),
            "{{/if}}".repeat(20)
        );
        assert!(
            lib.check(ContentKind::Part, "fine", &json!({ "body": fine }))
                .is_empty()
        );
    }

    #[test]
    fn parts_that_multiply_their_output_are_refused() {
        let mut items = vec![item(
            ContentKind::Part,
            "p0",
            json!({"body": "x".repeat(1000)}),
        )];
        for i in 1..7 {
            let body = format!(
                "{{{{> p{0}}}}}{{{{> p{0}}}}}{{{{> p{0}}}}}{{{{> p{0}}}}}",
                i - 1
            );
            items.push(item(
                ContentKind::Part,
                &format!("p{i}"),
                json!({ "body": body }),
            ));
        }
        let (lib, rejected) = Library::build(Arc::new(Sandbox::default()), &items);
        let keys: BTreeSet<_> = rejected.iter().map(|(i, _)| i.key.as_str()).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["p6"]),
            "4^6 × 1000 bytes is past the limit, 4^5 × 1000 is not"
        );
        let found = lib.check(
            ContentKind::Template,
            "t",
            &json!({"channel": "sms", "text": "{{> p5}}{{> p5}}{{> p5}}"}),
        );
        assert_eq!(
            found.first().map(|e| e.code),
            Some("too_large"),
            "{found:?}"
        );
        let chain: Vec<Item> = (0..12)
            .map(|i| item(ContentKind::Part, &format!("c{i}"), json!({"body": if i == 0 { "end".to_string() } else { format!("{{{{> c{}}}}}", i - 1) }})))
            .collect();
        let (_, rejected) = Library::build(Arc::new(Sandbox::default()), &chain);
        assert!(
            rejected.iter().any(|(_, p)| p[0].message.contains("deep")),
            "{rejected:?}"
        );
    }

    #[test]
    fn a_cycle_saved_before_is_left_out_when_loading() {
        let items = vec![
            item(ContentKind::Part, "a", json!({"body": "{{> b}}"})),
            item(ContentKind::Part, "b", json!({"body": "{{> a}}"})),
            item(ContentKind::Part, "ok", json!({"body": "fine"})),
            item(
                ContentKind::Template,
                "t",
                json!({"channel": "line", "text": "{{> a}}"}),
            ),
            item(
                ContentKind::Template,
                "u",
                json!({"channel": "line", "text": "{{> ok}}"}),
            ),
        ];
        let (lib, rejected) = Library::build(Arc::new(Sandbox::default()), &items);
        let keys: BTreeSet<_> = rejected.iter().map(|(i, _)| i.key.as_str()).collect();
        assert_eq!(keys, BTreeSet::from(["a", "b", "t"]));
        assert!(matches!(
            lib.render("t", &hanako()),
            Err(RenderError::Broken { .. })
        ));
        assert_eq!(lib.render("u", &hanako()).unwrap().text, "fine");
        assert!(matches!(
            lib.render("v", &hanako()),
            Err(RenderError::NoTemplate(_))
        ));
    }

    #[test]
    fn a_hostile_snippet_fails_the_render_without_stalling() {
        let items = vec![
            item(ContentKind::Snippet, "spin", json!({"source": "loop {}"})),
            item(
                ContentKind::Template,
                "t",
                json!({"channel": "sms", "text": "{{script \"spin\"}}"}),
            ),
        ];
        let started = std::time::Instant::now();
        let e = library(&items).render("t", &hanako()).unwrap_err();
        assert!(e.to_string().contains("stopped after"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn the_snippets_of_one_message_share_a_time_budget() {
        let sandbox = Sandbox::new(crate::personalise::Limits {
            message_time: std::time::Duration::from_millis(20),
            ..Default::default()
        });
        let items = vec![
            item(
                ContentKind::Snippet,
                "count",
                json!({"source": "let n = 0; while n < 5000 { n += 1; } n"}),
            ),
            item(
                ContentKind::Template,
                "t",
                json!({"channel": "sms", "text": "{{#each contact.visits}}{{script \"count\"}}{{/each}}"}),
            ),
        ];
        let (library, rejected) = Library::build(Arc::new(sandbox), &items);
        assert!(rejected.is_empty(), "{rejected:?}");
        let mut contact = hanako();
        contact.insert("visits".into(), json!(vec![1; 2_000]));
        let started = std::time::Instant::now();
        let e = library.render("t", &contact).unwrap_err();
        assert!(
            e.to_string()
                .contains("for all the snippets of one message"),
            "{e}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // The budget is per message: the next one starts afresh.
        contact.insert("visits".into(), json!([1]));
        assert_eq!(library.render("t", &contact).unwrap().text, "5000");
    }

    #[test]
    fn the_snippet_test_run_returns_the_value() {
        let lib = library(&autumn());
        let value = lib.try_snippet(
            "`${contact.first_name}: ${args[0] * 2}`",
            &hanako(),
            &[json!(21)],
        );
        assert_eq!(value.unwrap(), json!("花子: 42"));
    }
}
