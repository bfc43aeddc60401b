# toolgate's authorization policy for the quickstart world.
#
# Input and decision contract: policies/README.md. Data: data.toolgate.manifests and data.toolgate.agents come from
# tool-manifests/ (loaded by toolgate); data.toolgate.access comes from policies/access.yaml.
package toolgate.authz

access := data.toolgate.access

tool := input.tool

# ---------------------------------------------------------------------------------------------------------------
# Decision: always defined, always this shape.
# ---------------------------------------------------------------------------------------------------------------

decision := {
	"allow": allow,
	"escalate": escalate,
	"reasons": reasons,
	"obligations": {"clearance": clearance, "redact": [], "mask_columns": sort([c | some c in mask_columns])},
}

default allow := false

# Listing: a caller sees exactly the tools it could call with some arguments.
allow if {
	input.action == "list"
	visible
}

allow if {
	input.action == "call"
	visible
	count(deny) == 0
	count(needs_approval) == 0
}

# During a call the caller may make, the tool's upstream may ask the caller's client: its model (sampling), its
# user (elicitation) or its filesystem roots, unless what it sends is refused below (exfiltration).
allow if {
	input.action in {"sample", "elicit", "roots"}
	visible
	count(deny) == 0
}

# While a caller reads a resource or gets a prompt it may use, the upstream may ask the caller's client too (protocol
# 2026-07-28 input requests), unless what it sends is refused below.
allow if {
	input.action in {"sample", "elicit", "roots"}
	resource_visible
	count(deny) == 0
}

allow if {
	input.action in {"sample", "elicit", "roots"}
	prompt_visible
	count(deny) == 0
}

# Resources and prompts: a caller may read (or subscribe to, or complete) exactly what it may see listed.
allow if {
	input.action in {"list", "read", "subscribe", "complete"}
	resource_visible
}

allow if {
	input.action in {"list", "get", "complete"}
	prompt_visible
	count(deny) == 0
}

default escalate := false

escalate if {
	input.action == "call"
	visible
	count(deny) == 0
	count(needs_approval) > 0
}

default reasons := []

reasons := sort([m | some m in needs_approval]) if escalate

reasons := sort([m | some m in deny]) if {
	not allow
	not escalate
	count(deny) > 0
}

reasons := [sprintf("`%s` is not available to you", [tool.name])] if {
	not visible
	count(deny) == 0
}

reasons := [sprintf("`%s` is not available to you", [input.resource.uri])] if {
	not resource_visible
	count(deny) == 0
}

reasons := [sprintf("`%s` is not available to you", [input.prompt.name])] if {
	not prompt_visible
	count(deny) == 0
}

# ---------------------------------------------------------------------------------------------------------------
# Who: the principal's roles (token claim plus the user directory) and what they grant.
# ---------------------------------------------------------------------------------------------------------------

principal_roles contains role if {
	input.mode == "principal_context"
	some role in input.principal.roles
}

# The directory is keyed by issuer, then subject: identity is (iss, sub), never sub alone.
principal_roles contains role if {
	input.mode == "principal_context"
	some role in access.users[input.principal.issuer][input.principal.subject].roles
}

# Tool patterns granted: to a human through their roles, to an agent acting alone by its own grant.
granted contains pattern if {
	some role in principal_roles
	some pattern in access.roles[role].tools
}

granted contains pattern if {
	input.mode == "agent_only"
	some pattern in access.agents[input.agent.id].tools
}

matches(pattern, name) if pattern == name

matches(pattern, name) if {
	endswith(pattern, "*")
	startswith(name, trim_suffix(pattern, "*"))
}

# Agents anywhere in the chain that may only read.
read_only_actors contains agent if {
	some agent in input.chain
	access.agents[agent].read_only
}

visible if {
	some pattern in granted
	matches(pattern, tool.name)
	not hidden_by_risk
}

# A read-only actor never sees tools that change anything; nobody sees a destructive tool (the default for tools
# without a manifest) until a rule says otherwise.
hidden_by_risk if {
	tool.risk != "read"
	count(read_only_actors) > 0
}

hidden_by_risk if tool.risk == "destructive"

# ---------------------------------------------------------------------------------------------------------------
# Resources and prompts: granted by exposed URI and prompt-name patterns (roles' `resources` and `prompts`, an agent
# acting alone by its own grant); a resource classified above the caller's clearance is not shown at all (its
# contents are also redacted to the clearance), and a read-only actor never sees a prompt that is not `read`.
# ---------------------------------------------------------------------------------------------------------------

granted_resources contains pattern if {
	some role in principal_roles
	some pattern in access.roles[role].resources
}

granted_resources contains pattern if {
	input.mode == "agent_only"
	some pattern in access.agents[input.agent.id].resources
}

granted_prompts contains pattern if {
	some role in principal_roles
	some pattern in access.roles[role].prompts
}

granted_prompts contains pattern if {
	input.mode == "agent_only"
	some pattern in access.agents[input.agent.id].prompts
}

resource_visible if {
	some pattern in granted_resources
	matches(pattern, input.resource.uri)
	levels[input.resource.classification] <= effective_level
	input.resource.risk != "destructive"
}

prompt_visible if {
	some pattern in granted_prompts
	matches(pattern, input.prompt.name)
	levels[input.prompt.classification] <= effective_level
	input.prompt.risk != "destructive"
	not prompt_hidden_by_risk
}

prompt_hidden_by_risk if {
	input.prompt.risk != "read"
	count(read_only_actors) > 0
}

# ---------------------------------------------------------------------------------------------------------------
# Arguments: decided on the facts toolgate computed (input.facts), never on the raw strings.
# ---------------------------------------------------------------------------------------------------------------

readable_tables contains table if {
	some role in principal_roles
	some table in access.roles[role].tables
}

readable_tables contains table if {
	input.mode == "agent_only"
	some table in access.agents[input.agent.id].tables
}

# SQL: the facts are SQLite's own (toolgate prepared the statement against the upstream's declared schema and
# read the authorizer's record and the compiled program). Anything SQLite could not prepare is refused.
deny contains msg if {
	some name, fact in input.facts
	fact.kind == "sql"
	not fact.prepared
	msg := sprintf("argument `%s` is not a SQL statement toolgate can parse: SQLite cannot prepare it against the declared schema (%s); send one plain SELECT over the tables you may read", [name, object.get(fact, "error", "no detail")])
}

deny contains msg if {
	some name, fact in input.facts
	fact.kind == "sql"
	fact.prepared
	fact.statement_count != 1
	msg := sprintf("argument `%s` holds %d statements; send exactly one SELECT", [name, fact.statement_count])
}

deny contains msg if {
	some name, fact in input.facts
	fact.kind == "sql"
	some kind in fact.kinds
	kind != "select"
	msg := sprintf("argument `%s` is a `%s` statement; only read-only SELECT queries are allowed", [name, kind])
}

deny contains msg if {
	some name, fact in input.facts
	fact.kind == "sql"
	fact.prepared
	count(fact.unknown) > 0
	msg := sprintf("argument `%s` does something toolgate cannot account for (%s); send one plain SELECT", [name, concat("; ", fact.unknown)])
}

# The catch-all: whatever else SQLite says, only a statement it calls read-only goes through.
deny contains msg if {
	some name, fact in input.facts
	fact.kind == "sql"
	fact.prepared
	not fact.read_only
	fact.statement_count == 1
	count(fact.unknown) == 0
	every kind in fact.kinds { kind == "select" }
	msg := sprintf("argument `%s` is not a read-only statement; send one plain SELECT", [name])
}

deny contains msg if {
	some name, fact in input.facts
	fact.kind == "sql"
	fact.prepared
	some function in fact.functions
	not function in access.sql.functions
	msg := sprintf("argument `%s` calls function `%s()`, which is not allowed in queries", [name, function])
}

deny contains msg if {
	some name, fact in input.facts
	fact.kind == "sql"
	fact.prepared
	some table in fact.tables
	not table in readable_tables
	msg := sprintf("argument `%s` reads table `%s`, which you may not read; readable: %s", [name, table, concat(", ", sort([t | some t in readable_tables]))])
}

# Columns: any expression over a column (in the result, WHERE, a join, ORDER BY, a function, a subquery, a CTE, a
# view) reads it. Above the caller's clearance it is refused, unless policy data grants it masked and SQLite
# shows it is only ever a plain result column (then its cells are masked by name in the answer).
deny contains msg if {
	some name, fact in input.facts
	fact.kind == "sql"
	fact.prepared
	some read in fact.columns
	read.column != ""
	# A table the caller may not read at all is refused as a table (above), not column by column.
	read.table in readable_tables
	levels[read.class] > effective_level
	column := sprintf("%s.%s", [read.table, read.column])
	not masked_ok(fact, column)
	msg := column_refusal(name, column, read.class)
}

column_refusal(name, column, class) := sprintf("argument `%s` reads column `%s` (%s), above your clearance (%s); leave it out of the query: any use of it (in the result, WHERE, a join, ORDER BY, a function) counts as reading it", [name, column, class, names[effective_level]]) if {
	not column in masked_columns
}

column_refusal(name, column, class) := sprintf("argument `%s` reads column `%s` (%s), which you may see only masked: select it only as a plain result column (`SELECT %s …`, no alias, no function, not in WHERE, ORDER BY, GROUP BY, DISTINCT, joins or subqueries), or leave it out", [name, column, class, split(column, ".")[1]]) if {
	column in masked_columns
}

masked_ok(fact, column) if {
	column in masked_columns
	column in fact.projected_plainly
}

# Columns granted masked: to a human through their roles, to an agent acting alone by its own grant.
masked_columns contains column if {
	some role in principal_roles
	some column in access.roles[role].masked_columns
}

masked_columns contains column if {
	input.mode == "agent_only"
	some column in access.agents[input.agent.id].masked_columns
}

# The answer's columns to mask: result columns that are a granted-masked column above the clearance.
mask_columns contains {"name": result.name, "class": read.class} if {
	input.action == "call"
	some fact in input.facts
	fact.kind == "sql"
	fact.prepared
	some read in fact.columns
	levels[read.class] > effective_level
	column := sprintf("%s.%s", [read.table, read.column])
	masked_ok(fact, column)
	some result in fact.result
	result.table == read.table
	result.column == read.column
}

deny contains msg if {
	some name, fact in input.facts
	fact.kind == "path"
	fact.invalid
	msg := sprintf("argument `%s` is not a plain path (NUL, percent-encoding or backslashes); send it as plain text with `/` separators", [name])
}

deny contains msg if {
	some name, fact in input.facts
	fact.kind == "path"
	not fact.invalid
	fact.escapes_root
	msg := sprintf("argument `%s` points outside the tool's root", [name])
}

deny contains msg if {
	some name, fact in input.facts
	fact.kind == "path"
	not fact.escapes_root
	some agent in input.chain
	root := access.agents[agent].file_root
	not under(fact.normalized, root)
	msg := sprintf("argument `%s`: agent `%s` may only use paths under `%s/`", [name, agent, root])
}

# Exfiltration: an argument carrying a value more sensitive than the tool is classified for (a card number or a
# private key sent to an `internal` tool), or anything above `internal` sent to an open-world tool.
deny contains msg if {
	some name, fact in input.facts
	some found in fact.detected
	levels[found.class] > levels[tool.classification]
	msg := sprintf("argument `%s` carries a %s (%s), more sensitive than `%s` may receive; leave it out", [name, found.detector, found.class, tool.name])
}

deny contains msg if {
	tool.annotations.openWorldHint == true
	some name, fact in input.facts
	some found in fact.detected
	levels[found.class] > levels.internal
	msg := sprintf("argument `%s` carries a %s (%s), which is never sent to an open-world tool", [name, found.detector, found.class])
}

under(path, root) if path == root

under(path, root) if startswith(path, concat("", [root, "/"]))

# ---------------------------------------------------------------------------------------------------------------
# Escalation: calls that change data need a human approver.
# ---------------------------------------------------------------------------------------------------------------

needs_approval contains msg if {
	input.action == "call"
	tool.risk == "write"
	msg := sprintf("`%s` changes data: a human approver must allow this exact call", [tool.name])
}

# ---------------------------------------------------------------------------------------------------------------
# Obligations: the highest class the caller may see (toolgate lowers it further to the chain's maximum).
# ---------------------------------------------------------------------------------------------------------------

levels := {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}

names := ["public", "internal", "confidential", "restricted"]

# (Values are bound in the body, not computed in the head: an undefined value then just adds nothing.)
cleared_levels contains level if {
	some role in principal_roles
	level := levels[access.roles[role].clearance]
}

cleared_levels contains level if {
	input.mode == "agent_only"
	level := levels[access.agents[input.agent.id].clearance]
}

default clearance := "public"

clearance := names[max(cleared_levels)] if count(cleared_levels) > 0

# What the caller may see: the policy's clearance, never above the chain's (toolgate enforces both again).
effective_level := min([levels[clearance], levels[input.scope.clearance]]) if input.scope.clearance in names

default effective_level := 0
