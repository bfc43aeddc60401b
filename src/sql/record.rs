//! The authorizer's record: every action SQLite asks permission for while it prepares a statement. The
//! callback writes into a recorder owned by the preparing thread (preparing is synchronous), so one callback,
//! installed once per connection, serves every statement.

use std::cell::RefCell;
use std::time::Instant;

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// Most actions one statement may ask for; a statement that asks for more is refused as too complex.
const MAX_EVENTS: usize = 20_000;

/// One action, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Select,
    Recursive,
    Read { table: String, column: String },
    Insert { table: String },
    Update { table: String, column: String },
    Delete { table: String },
    Create { what: &'static str, name: String },
    Drop { what: &'static str, name: String },
    Alter { table: String },
    Pragma { name: String, value: Option<String> },
    Transaction,
    Savepoint,
    Attach { file: String },
    Detach { database: String },
    Reindex,
    Analyze,
    Function { name: String },
    Unknown { code: i32 },
}

/// An action with where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub action: Action,
    pub database: Option<String>,
    /// The trigger or view whose code asked.
    pub accessor: Option<String>,
    /// 0 for the first statement, 1 for what follows it.
    pub statement: usize,
}

/// Why a recording stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Deadline,
    TooManyActions,
}

#[derive(Debug)]
struct Recorder {
    events: Vec<Event>,
    deadline: Instant,
    statement: usize,
    cut: Option<Cut>,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Starts recording on this thread; what was recorded before is dropped.
pub fn start(deadline: Instant) {
    RECORDER.with(|r| {
        if let Ok(mut r) = r.try_borrow_mut() {
            *r = Some(Recorder {
                events: Vec::new(),
                deadline,
                statement: 0,
                cut: None,
            });
        }
    });
}

/// Later events belong to the statements that follow the first.
pub fn following() {
    RECORDER.with(|r| {
        if let Ok(mut r) = r.try_borrow_mut()
            && let Some(r) = r.as_mut()
        {
            r.statement = 1;
        }
    });
}

/// Stops recording and returns what was recorded.
pub fn finish() -> (Vec<Event>, Option<Cut>) {
    RECORDER.with(|r| match r.try_borrow_mut() {
        Ok(mut r) => r.take().map_or((Vec::new(), None), |r| (r.events, r.cut)),
        Err(_) => (Vec::new(), None),
    })
}

/// The callback installed on every fact database. Without a recorder (nothing is being analysed) it denies:
/// nothing is prepared unrecorded. Pragmas are denied as they are recorded, because some act while being
/// prepared.
pub fn authorize(context: AuthContext<'_>) -> Authorization {
    RECORDER.with(|r| {
        let Ok(mut r) = r.try_borrow_mut() else {
            return Authorization::Deny;
        };
        let Some(recorder) = r.as_mut() else {
            return Authorization::Deny;
        };
        if Instant::now() > recorder.deadline {
            recorder.cut = Some(Cut::Deadline);
            return Authorization::Deny;
        }
        if recorder.events.len() >= MAX_EVENTS {
            recorder.cut = Some(Cut::TooManyActions);
            return Authorization::Deny;
        }
        let action = owned(&context.action);
        let deny = matches!(action, Action::Pragma { .. });
        recorder.events.push(Event {
            action,
            database: context.database_name.map(str::to_string),
            accessor: context.accessor.map(str::to_string),
            statement: recorder.statement,
        });
        if deny {
            Authorization::Deny
        } else {
            Authorization::Allow
        }
    })
}

fn owned(action: &AuthAction<'_>) -> Action {
    use AuthAction as A;
    let s = |s: &str| s.to_string();
    match *action {
        A::Select => Action::Select,
        A::Recursive => Action::Recursive,
        A::Read {
            table_name,
            column_name,
        } => Action::Read {
            table: s(table_name),
            column: s(column_name),
        },
        A::Insert { table_name } => Action::Insert {
            table: s(table_name),
        },
        A::Update {
            table_name,
            column_name,
        } => Action::Update {
            table: s(table_name),
            column: s(column_name),
        },
        A::Delete { table_name } => Action::Delete {
            table: s(table_name),
        },
        A::CreateIndex { index_name, .. } => create("index", index_name),
        A::CreateTable { table_name } => create("table", table_name),
        A::CreateTempIndex { index_name, .. } => create("temp index", index_name),
        A::CreateTempTable { table_name } => create("temp table", table_name),
        A::CreateTempTrigger { trigger_name, .. } => create("temp trigger", trigger_name),
        A::CreateTempView { view_name } => create("temp view", view_name),
        A::CreateTrigger { trigger_name, .. } => create("trigger", trigger_name),
        A::CreateView { view_name } => create("view", view_name),
        A::CreateVtable { table_name, .. } => create("virtual table", table_name),
        A::DropIndex { index_name, .. } => drop("index", index_name),
        A::DropTable { table_name } => drop("table", table_name),
        A::DropTempIndex { index_name, .. } => drop("temp index", index_name),
        A::DropTempTable { table_name } => drop("temp table", table_name),
        A::DropTempTrigger { trigger_name, .. } => drop("temp trigger", trigger_name),
        A::DropTempView { view_name } => drop("temp view", view_name),
        A::DropTrigger { trigger_name, .. } => drop("trigger", trigger_name),
        A::DropView { view_name } => drop("view", view_name),
        A::DropVtable { table_name, .. } => drop("virtual table", table_name),
        A::AlterTable { table_name, .. } => Action::Alter {
            table: s(table_name),
        },
        A::Pragma {
            pragma_name,
            pragma_value,
        } => Action::Pragma {
            name: s(pragma_name),
            value: pragma_value.map(s),
        },
        A::Transaction { .. } => Action::Transaction,
        A::Savepoint { .. } => Action::Savepoint,
        A::Attach { filename } => Action::Attach { file: s(filename) },
        A::Detach { database_name } => Action::Detach {
            database: s(database_name),
        },
        A::Reindex { .. } => Action::Reindex,
        A::Analyze { .. } => Action::Analyze,
        A::Function { function_name } => Action::Function {
            name: function_name.to_ascii_lowercase(),
        },
        A::Unknown { code, .. } => Action::Unknown { code },
        // The enum is non-exhaustive: an action added by a later SQLite is outside the model.
        _ => Action::Unknown { code: -1 },
    }
}

fn create(what: &'static str, name: &str) -> Action {
    Action::Create {
        what,
        name: name.to_string(),
    }
}

fn drop(what: &'static str, name: &str) -> Action {
    Action::Drop {
        what,
        name: name.to_string(),
    }
}
