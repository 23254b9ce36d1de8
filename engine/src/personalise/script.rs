//! The rhai sandbox snippets run in (MA-10). A snippet can compute, read the contact and its
//! arguments, and return a value; it cannot load modules, print, `eval` code, or run past its
//! limits: operations, string, array and map sizes, call and expression depth, and wall time.
//! A snippet that reaches one is stopped and the limit is named.

use std::cell::Cell;
use std::time::{Duration, Instant};

use rhai::{AST, Array, Dynamic, Engine, EvalAltResult, Map as RhaiMap, Position, Scope};
use serde_json::{Map, Value as Json};

/// How far one evaluation may go.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_operations: u64,
    pub max_string_bytes: usize,
    pub max_array_items: usize,
    pub max_map_items: usize,
    pub max_call_depth: usize,
    pub max_expression_depth: usize,
    pub wall_time: Duration,
    /// The running time of all the snippets one message calls together (a snippet in an
    /// `{{#each}}` runs once per item).
    pub message_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 100_000,
            max_string_bytes: 64 * 1024,
            max_array_items: 10_000,
            max_map_items: 10_000,
            max_call_depth: 24,
            max_expression_depth: 64,
            wall_time: Duration::from_millis(50),
            message_time: Duration::from_millis(250),
        }
    }
}

/// Why a snippet did not compile or did not finish, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", at(*line, *column))]
pub struct ScriptError {
    /// `syntax`, `limit` (a sandbox limit stopped it) or `runtime`.
    pub code: &'static str,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

fn place(position: Position) -> (Option<usize>, Option<usize>) {
    (position.line(), position.position())
}

thread_local! {
    /// When the evaluation running on this thread must stop. Evaluations are synchronous, so
    /// the thread identifies the evaluation.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// When the message being rendered on this thread must be done ([`Sandbox::for_one_message`]).
    static MESSAGE_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// How often (in operations) the wall clock is read: reading it every operation would cost
/// more than a simple rule.
const CLOCK_EVERY: u64 = 256;

/// A compiled snippet.
#[derive(Debug, Clone)]
pub struct Script {
    ast: AST,
}

/// The configured rhai engine. One is shared by every evaluation of a process.
pub struct Sandbox {
    engine: Engine,
    limits: Limits,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new(Limits::default())
    }
}

/// The variables every snippet sees: declared at compile time so a misspelt variable is a
/// compile error rather than a surprise at send time. Declared as variables, not constants:
/// the optimiser would fold a constant's placeholder value into the compiled script.
fn declared() -> Scope<'static> {
    let mut scope = Scope::new();
    scope.push("contact", RhaiMap::new());
    scope.push("args", Array::new());
    scope
}

impl Sandbox {
    pub fn new(limits: Limits) -> Self {
        let mut engine = Engine::new();
        engine
            .set_max_operations(limits.max_operations)
            .set_max_string_size(limits.max_string_bytes)
            .set_max_array_size(limits.max_array_items)
            .set_max_map_size(limits.max_map_items)
            .set_max_call_levels(limits.max_call_depth)
            .set_max_expr_depths(limits.max_expression_depth, limits.max_expression_depth)
            .set_max_variables(256)
            .set_max_functions(64)
            .set_strict_variables(true)
            .on_print(|_| {})
            .on_debug(|_, _, _| {})
            .on_progress(|operations| {
                if operations % CLOCK_EVERY != 0 {
                    return None;
                }
                DEADLINE.with(|deadline| match deadline.get() {
                    Some(when) if Instant::now() >= when => Some(Dynamic::UNIT),
                    _ => None,
                })
            });
        engine.disable_symbol("eval");
        Sandbox { engine, limits }
    }

    /// Runs `work` (rendering one message) with the snippets it calls sharing
    /// [`Limits::message_time`].
    pub fn for_one_message<T>(&self, work: impl FnOnce() -> T) -> T {
        MESSAGE_DEADLINE.with(|d| d.set(Some(Instant::now() + self.limits.message_time)));
        let result = work();
        MESSAGE_DEADLINE.with(|d| d.set(None));
        result
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn compile(&self, source: &str) -> Result<Script, ScriptError> {
        let ast = self
            .engine
            .compile_with_scope(&declared(), source)
            .map_err(|e| {
                let (line, column) = place(e.position());
                ScriptError {
                    code: "syntax",
                    line,
                    column,
                    message: e.err_type().to_string(),
                }
            })?;
        Ok(Script { ast })
    }

    /// The contact as snippets see it; convert once per contact and reuse for each snippet.
    pub fn contact(record: &Map<String, Json>) -> Dynamic {
        rhai::serde::to_dynamic(record).unwrap_or(Dynamic::UNIT)
    }

    /// Runs `script` for a contact with arguments and returns its value as JSON.
    pub fn run(
        &self,
        script: &Script,
        contact: &Dynamic,
        args: &[Json],
    ) -> Result<Json, ScriptError> {
        let value = self.evaluate(script, contact, args)?;
        rhai::serde::from_dynamic::<Json>(&value).map_err(|e| ScriptError {
            code: "runtime",
            line: None,
            column: None,
            message: format!("its value cannot be used in a message: {e}"),
        })
    }

    /// Runs `script` as a condition: its value must be `true` or `false`.
    pub fn decide(&self, script: &Script, contact: &Dynamic) -> Result<bool, ScriptError> {
        let value = self.evaluate(script, contact, &[])?;
        value.as_bool().map_err(|kind| ScriptError {
            code: "runtime",
            line: None,
            column: None,
            message: format!("a condition must give true or false, not {kind}"),
        })
    }

    fn evaluate(
        &self,
        script: &Script,
        contact: &Dynamic,
        args: &[Json],
    ) -> Result<Dynamic, ScriptError> {
        let args: Array = args
            .iter()
            .map(|a| rhai::serde::to_dynamic(a).unwrap_or(Dynamic::UNIT))
            .collect();
        let mut scope = Scope::new();
        scope.push_constant_dynamic("contact", contact.clone());
        scope.push_constant("args", args);
        let own = Instant::now() + self.limits.wall_time;
        let deadline = match MESSAGE_DEADLINE.with(Cell::get) {
            Some(message) if message <= Instant::now() => {
                return Err(ScriptError {
                    code: "limit",
                    line: None,
                    column: None,
                    message: self.out_of_time(),
                });
            }
            Some(message) => own.min(message),
            None => own,
        };
        DEADLINE.with(|d| d.set(Some(deadline)));
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &script.ast);
        DEADLINE.with(|d| d.set(None));
        result.map_err(|e| self.explain(*e))
    }

    fn out_of_time(&self) -> String {
        format!(
            "stopped: out of running time ({} ms per snippet call, {} ms for all the snippets of one message)",
            self.limits.wall_time.as_millis(),
            self.limits.message_time.as_millis()
        )
    }

    fn explain(&self, error: EvalAltResult) -> ScriptError {
        let (line, column) = place(error.position());
        let limit = |message: String| ScriptError {
            code: "limit",
            line,
            column,
            message,
        };
        match error {
            EvalAltResult::ErrorTooManyOperations(_) => limit(format!(
                "stopped after {} operations (the limit): is there an endless loop?",
                self.limits.max_operations
            )),
            EvalAltResult::ErrorTerminated(..) => limit(self.out_of_time()),
            EvalAltResult::ErrorDataTooLarge(what, _) => limit(format!(
                "stopped: {what} grew past its limit ({} bytes of text, {} array items, {} map entries)",
                self.limits.max_string_bytes,
                self.limits.max_array_items,
                self.limits.max_map_items
            )),
            EvalAltResult::ErrorStackOverflow(_) => limit(format!(
                "stopped: calls nested deeper than {} (endless recursion?)",
                self.limits.max_call_depth
            )),
            EvalAltResult::ErrorTooManyVariables(_) | EvalAltResult::ErrorTooManyModules(_) => {
                limit(error.to_string())
            }
            other => ScriptError {
                code: "runtime",
                line,
                column,
                message: match other {
                    EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
                    e => e.to_string(),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contact() -> Dynamic {
        let record = json!({"first_name": "花子", "prefecture": "愛知県", "points": 1200});
        Sandbox::contact(record.as_object().unwrap())
    }

    fn run(source: &str) -> Result<Json, ScriptError> {
        let sandbox = Sandbox::default();
        let script = sandbox.compile(source)?;
        sandbox.run(&script, &contact(), &[json!("秋")])
    }

    #[test]
    fn a_snippet_reads_the_contact_and_its_arguments() {
        let value = run(
            r#"if contact.points >= 1000 { `${contact.first_name}様、${args[0]}の特典` } else { "" }"#,
        );
        assert_eq!(value.unwrap(), json!("花子様、秋の特典"));
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = run("let x = 1;\nlet y = (x + ;").unwrap_err();
        assert_eq!((e.code, e.line), ("syntax", Some(2)));
        assert!(e.column.is_some());
        assert!(e.to_string().starts_with("line 2, column "), "{e}");
    }

    #[test]
    fn an_unknown_variable_is_caught_when_compiling() {
        let e = run("contcat.first_name").unwrap_err();
        assert_eq!((e.code, e.line), ("syntax", Some(1)));
        assert!(e.message.contains("contcat"), "{e}");
    }

    #[test]
    fn an_endless_loop_is_stopped() {
        let e = run("let n = 0; loop { n += 1; }").unwrap_err();
        assert_eq!(e.code, "limit");
        assert!(e.message.contains("operations"), "{e}");
    }

    #[test]
    fn a_slow_script_is_stopped_by_the_wall_clock() {
        let sandbox = Sandbox::new(Limits {
            max_operations: u64::MAX / 2,
            wall_time: Duration::from_millis(20),
            ..Limits::default()
        });
        let script = sandbox.compile("let n = 0; loop { n += 1; }").unwrap();
        let started = Instant::now();
        let e = sandbox.run(&script, &contact(), &[]).unwrap_err();
        assert_eq!(e.code, "limit");
        assert!(e.message.contains("20 ms"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn memory_bombs_are_stopped() {
        for bomb in [
            r#"let s = "x"; loop { s += s; }"#,
            "let a = [1]; loop { a += a; }",
            r#"let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }"#,
            r#""x".pad(100000000, "y")"#,
        ] {
            let e = run(bomb).unwrap_err();
            assert_eq!(e.code, "limit", "{bomb}: {e}");
        }
    }

    #[test]
    fn deep_recursion_is_stopped() {
        let e = run("fn down(n) { down(n + 1) } down(0)").unwrap_err();
        assert_eq!(e.code, "limit");
        assert!(e.message.contains("nested"), "{e}");
    }

    #[test]
    fn eval_and_modules_are_not_available() {
        assert_eq!(run(r#"eval("1 + 1")"#).unwrap_err().code, "syntax");
        assert_eq!(run(r#"import "x" as y; 1"#).unwrap_err().code, "syntax");
    }

    #[test]
    fn thrown_values_are_runtime_errors_with_their_message() {
        let e = run("\n throw \"no prefecture\";").unwrap_err();
        assert_eq!((e.code, e.line), ("runtime", Some(2)));
        assert_eq!(e.message, "no prefecture");
    }

    #[test]
    fn a_condition_must_be_true_or_false() {
        let sandbox = Sandbox::default();
        let vip = sandbox.compile("contact.points > 1000").unwrap();
        assert!(sandbox.decide(&vip, &contact()).unwrap());
        let wrong = sandbox.compile("contact.points").unwrap();
        assert_eq!(
            sandbox.decide(&wrong, &contact()).unwrap_err().code,
            "runtime"
        );
    }
}
