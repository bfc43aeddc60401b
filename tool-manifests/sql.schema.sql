-- The company database as the `sql` upstream holds it (examples/sql_query.rs): tables only, no data.
-- Keep this in step with the real database: `toolgate check` compiles it, and a table or column missing here
-- makes every statement that names it unpreparable, so refused.
CREATE TABLE employees (id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, department TEXT NOT NULL, national_id TEXT NOT NULL);
CREATE TABLE salaries (employee_id TEXT NOT NULL REFERENCES employees(id), amount INTEGER NOT NULL, currency TEXT NOT NULL);
CREATE TABLE projects (id INTEGER PRIMARY KEY, name TEXT NOT NULL, owner_id TEXT REFERENCES employees(id), status TEXT NOT NULL);
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, country TEXT NOT NULL);
