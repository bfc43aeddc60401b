# Unit tests of the quickstart policy. Run with `toolgate policy test` (and by `cargo test`).
package toolgate.authz_test

import data.toolgate.authz

# Callers of the quickstart world.
alice := {
	"mode": "principal_context",
	"principal": {"issuer": "toolgate-dev", "subject": "alice", "roles": ["hr"], "groups": []},
	"agent": {"id": "assistant"},
	"chain": ["assistant"],
	"scope": {"token": null, "clearance": "restricted"},
}

carol := object.union(alice, {"principal": {"issuer": "toolgate-dev", "subject": "carol", "roles": ["hr", "hr-admin"], "groups": []}})

bob := object.union(alice, {"principal": {"issuer": "toolgate-dev", "subject": "bob", "roles": ["engineering"], "groups": []}})

# alice's assistant delegating to the summarizer.
alice_summarizer := object.union(alice, {"agent": {"id": "summarizer"}, "chain": ["assistant", "summarizer"]})

nightly := {
	"mode": "agent_only",
	"principal": null,
	"agent": {"id": "nightly-report"},
	"chain": ["nightly-report"],
	"scope": {"token": null, "clearance": "confidential"},
}

hr_lookup := {"name": "hr__lookup_employee", "upstream": "hr", "classification": "restricted", "risk": "read"}

sql_query := {"name": "sql__query", "upstream": "sql", "classification": "confidential", "risk": "read"}

read_file := {"name": "files__read_file", "upstream": "files", "classification": "internal", "risk": "read"}

write_file := {"name": "files__write_file", "upstream": "files", "classification": "internal", "risk": "write"}

mystery := {"name": "other__thing", "upstream": "other", "classification": "restricted", "risk": "destructive"}

listing(caller, tool) := object.union(caller, {"tool": tool, "action": "list", "arguments": {}, "facts": {}})

calling(caller, tool, facts) := object.union(caller, {"tool": tool, "action": "call", "arguments": {}, "facts": facts})

select(tables) := {"sql": {"kind": "sql", "prepared": true, "trailing_text": false, "unknown": [], "functions": [], "columns": [], "result": [], "projected_plainly": [], "statement_count": 1, "kinds": ["select"], "tables": tables, "read_only": true}}

path(normalized) := {"path": {"kind": "path", "normalized": normalized, "escapes_root": false, "absolute": false, "invalid": false}}

# --- HR directory: HR users through their assistant; nobody else even sees it.

test_hr_user_sees_and_calls_hr if {
	authz.decision.allow with input as listing(alice, hr_lookup)
	authz.decision.allow with input as calling(alice, hr_lookup, {})
}

test_engineer_does_not_see_hr if {
	not authz.decision.allow with input as listing(bob, hr_lookup)
	not authz.decision.allow with input as calling(bob, hr_lookup, {})
}

test_nightly_does_not_see_hr if not authz.decision.allow with input as listing(nightly, hr_lookup)

test_roles_from_the_directory_count if {
	no_roles := object.union(bob, {"principal": {"issuer": "toolgate-dev", "subject": "dana", "roles": [], "groups": []}})
	not authz.decision.allow with input as listing(no_roles, hr_lookup)
	authz.decision.allow with input as listing(no_roles, hr_lookup) with data.toolgate.access.users as {"toolgate-dev": {"dana": {"roles": ["hr"]}}}

	# The same subject name from another issuer is another person.
	not authz.decision.allow with input as listing(no_roles, hr_lookup) with data.toolgate.access.users as {"other-idp": {"dana": {"roles": ["hr"]}}}
}

# --- SQL: one read-only SELECT on tables the caller's role may read.

test_hr_user_reads_salaries if authz.decision.allow with input as calling(alice, sql_query, select(["employees", "salaries"]))

test_engineer_may_not_read_salaries if {
	d := authz.decision with input as calling(bob, sql_query, select(["salaries"]))
	not d.allow
	not d.escalate
	contains(d.reasons[0], "table `salaries`")
}

test_engineer_reads_customers if authz.decision.allow with input as calling(bob, sql_query, select(["customers"]))

test_writes_are_refused if {
	facts := {"sql": {"kind": "sql", "prepared": true, "trailing_text": false, "unknown": [], "functions": [], "columns": [], "result": [], "projected_plainly": [], "statement_count": 1, "kinds": ["delete"], "tables": ["customers"], "read_only": false}}
	d := authz.decision with input as calling(carol, sql_query, facts)
	not d.allow
	contains(d.reasons[0], "`delete`")
}

test_several_statements_are_refused if {
	facts := {"sql": {"kind": "sql", "prepared": true, "trailing_text": false, "unknown": [], "functions": [], "columns": [], "result": [], "projected_plainly": [], "statement_count": 2, "kinds": ["select"], "tables": ["projects"], "read_only": false}}
	not authz.decision.allow with input as calling(alice, sql_query, facts)
}

test_unparseable_sql_is_refused if {
	facts := {"sql": {"kind": "sql", "prepared": false, "error": "x", "statement_count": 0, "kinds": [], "tables": [], "read_only": false}}
	not authz.decision.allow with input as calling(carol, sql_query, facts)
}

test_attach_and_pragma_are_refused if {
	attach := {"sql": {"kind": "sql", "prepared": true, "trailing_text": false, "unknown": [], "functions": [], "columns": [], "result": [], "projected_plainly": [], "statement_count": 1, "kinds": ["attach"], "tables": [], "read_only": false}}
	pragma := {"sql": {"kind": "sql", "prepared": true, "trailing_text": false, "unknown": [], "functions": [], "columns": [], "result": [], "projected_plainly": [], "statement_count": 1, "kinds": ["pragma"], "tables": [], "read_only": false}}
	not authz.decision.allow with input as calling(carol, sql_query, attach)
	not authz.decision.allow with input as calling(carol, sql_query, pragma)
}

# --- The nightly job: read-only queries on its own tables, nothing else.

test_nightly_reads_projects if authz.decision.allow with input as calling(nightly, sql_query, select(["projects"]))

test_nightly_may_not_read_employees if not authz.decision.allow with input as calling(nightly, sql_query, select(["employees"]))

test_nightly_sees_no_files if {
	not authz.decision.allow with input as listing(nightly, read_file)
	not authz.decision.allow with input as listing(nightly, write_file)
}

# --- Files: paths under the agent's root; writes need a human approver; the summarizer only reads.

test_assistant_reads_any_file_in_the_store if authz.decision.allow with input as calling(alice, read_file, path("README.txt"))

test_escaping_paths_are_refused if {
	facts := {"path": {"kind": "path", "normalized": "", "escapes_root": true, "absolute": false, "invalid": false}}
	d := authz.decision with input as calling(alice, read_file, facts)
	not d.allow
	contains(d.reasons[0], "outside")
}

test_invalid_paths_are_refused if {
	facts := {"path": {"kind": "path", "normalized": "", "escapes_root": true, "absolute": false, "invalid": true}}
	not authz.decision.allow with input as calling(alice, read_file, facts)
}

test_summarizer_reads_under_its_root if authz.decision.allow with input as calling(alice_summarizer, read_file, path("reports/q3.md"))

test_summarizer_stays_under_its_root if {
	d := authz.decision with input as calling(alice_summarizer, read_file, path("README.txt"))
	not d.allow
	contains(d.reasons[0], "reports/")
}

test_summarizer_may_not_list_the_root_by_leaving_out_the_path if {
	# toolgate reports a left-out path as the root, with present: false.
	facts := {"path": {"kind": "path", "normalized": "", "escapes_root": false, "absolute": false, "invalid": false, "present": false}}
	list_files := {"name": "files__list_files", "upstream": "files", "classification": "internal", "risk": "read"}
	not authz.decision.allow with input as calling(alice_summarizer, list_files, facts)
	authz.decision.allow with input as calling(alice, list_files, facts)
}

test_summarizer_root_is_not_a_prefix_match if not authz.decision.allow with input as calling(alice_summarizer, read_file, path("reports-private/x.md"))

test_summarizer_never_sees_writes if {
	not authz.decision.allow with input as listing(alice_summarizer, write_file)
	d := authz.decision with input as calling(alice_summarizer, write_file, path("reports/x.md"))
	not d.allow
	not d.escalate
}

test_file_write_escalates if {
	authz.decision.allow with input as listing(alice, write_file)
	d := authz.decision with input as calling(alice, write_file, path("notes.txt"))
	not d.allow
	d.escalate
	contains(d.reasons[0], "approver")
}

test_refused_write_does_not_escalate if {
	facts := {"path": {"kind": "path", "normalized": "", "escapes_root": true, "absolute": false, "invalid": false}}
	d := authz.decision with input as calling(alice, write_file, facts)
	not d.allow
	not d.escalate
}

# --- Exfiltration: detected values more sensitive than the tool.

test_card_numbers_are_not_written_to_files if {
	facts := {
		"path": {"kind": "path", "normalized": "notes.txt", "escapes_root": false, "absolute": false, "invalid": false},
		"content": {"kind": "value", "detected": [{"detector": "card_number", "class": "restricted", "path": "$.content"}]},
	}
	d := authz.decision with input as calling(alice, write_file, facts)
	not d.allow
	not d.escalate
	contains(d.reasons[0], "card_number")
}

test_values_within_the_tool_class_pass if {
	facts := {"id_or_email": {"kind": "value", "detected": [{"detector": "email", "class": "confidential", "path": "$.id_or_email"}]}}
	authz.decision.allow with input as calling(alice, hr_lookup, facts)
}

test_open_world_tools_get_nothing_sensitive if {
	web := {"name": "web__fetch", "upstream": "web", "classification": "restricted", "risk": "read", "annotations": {"openWorldHint": true}}
	facts := {"url": {"kind": "value", "detected": [{"detector": "email", "class": "confidential", "path": "$.url"}]}}
	d := authz.decision with input as calling(alice, web, facts) with data.toolgate.access.roles.hr.tools as ["web__*"]
	not d.allow
	contains(d.reasons[0], "open-world")
}

# --- Tools nobody described are destructive by default: hidden from everyone.

test_undescribed_tools_are_hidden if {
	not authz.decision.allow with input as listing(carol, mystery)
	not authz.decision.allow with input as listing(nightly, mystery)
}

# --- Obligations: clearance from the principal's roles, or the agent's own.

test_clearance_follows_roles if {
	d_alice := authz.decision with input as listing(alice, hr_lookup)
	d_alice.obligations.clearance == "confidential"
	d_carol := authz.decision with input as listing(carol, hr_lookup)
	d_carol.obligations.clearance == "restricted"
	d_bob := authz.decision with input as listing(bob, sql_query)
	d_bob.obligations.clearance == "internal"
}

test_unknown_roles_do_not_lower_clearance if {
	extra := object.union(alice, {"principal": {"issuer": "toolgate-dev", "subject": "alice", "roles": ["hr", "sales"], "groups": []}})
	d := authz.decision with input as listing(extra, hr_lookup)
	d.obligations.clearance == "confidential"
}

test_decision_shape_is_stable if {
	d := authz.decision with input as {}
	d.allow == false
	d.escalate == false
	is_array(d.reasons)
	is_object(d.obligations)
}

# ---------------------------------------------------------------------------------------------------------------
# Columns: classes from the manifest, clearance from roles and the chain, masked grants.
# ---------------------------------------------------------------------------------------------------------------

reading(tables, columns, plain, result) := {"sql": object.union(select(tables).sql, {"columns": columns, "projected_plainly": plain, "result": result})}

email := {"table": "customers", "column": "email", "class": "confidential"}

cname := {"table": "customers", "column": "name", "class": "internal"}

test_engineer_may_not_compute_over_a_masked_column if {
	d := authz.decision with input as calling(bob, sql_query, reading(["customers"], [email], [], [{"name": "hex(email)"}]))
	not d.allow
	contains(d.reasons[0], "column `customers.email` (confidential)")
	contains(d.reasons[0], "only masked")
}

test_engineer_sees_a_plain_masked_column_masked if {
	facts := reading(["customers"], [email, cname], ["customers.email", "customers.name"], [{"name": "name", "table": "customers", "column": "name"}, {"name": "email", "table": "customers", "column": "email"}])
	d := authz.decision with input as calling(bob, sql_query, facts)
	d.allow
	d.obligations.mask_columns == [{"name": "email", "class": "confidential"}]
}

test_columns_above_clearance_without_a_grant_are_refused if {
	salary := {"table": "salaries", "column": "amount", "class": "confidential"}
	nightly_low := object.union(nightly, {"scope": {"token": null, "clearance": "internal"}})
	d := authz.decision with input as calling(nightly_low, sql_query, reading(["salaries"], [salary], ["salaries.amount"], []))
	not d.allow
	some r in d.reasons
	contains(r, "column `salaries.amount` (confidential), above your clearance (internal)")
}

test_hr_reads_confidential_columns_in_clear if {
	salary := {"table": "salaries", "column": "amount", "class": "confidential"}
	d := authz.decision with input as calling(alice, sql_query, reading(["salaries"], [salary], [], []))
	d.allow
	d.obligations.mask_columns == []
}

test_restricted_columns_need_restricted_clearance if {
	nid := {"table": "employees", "column": "national_id", "class": "restricted"}
	not authz.decision.allow with input as calling(alice, sql_query, reading(["employees"], [nid], [], []))
	authz.decision.allow with input as calling(carol, sql_query, reading(["employees"], [nid], [], []))
}

test_the_chain_lowers_column_clearance if {
	nid := {"table": "employees", "column": "national_id", "class": "restricted"}
	low := object.union(carol, {"scope": {"token": null, "clearance": "internal"}})
	not authz.decision.allow with input as calling(low, sql_query, reading(["employees"], [nid], [], []))
}

test_functions_off_the_list_are_refused if {
	facts := {"sql": object.union(select(["projects"]).sql, {"functions": ["load_extension"]})}
	d := authz.decision with input as calling(carol, sql_query, facts)
	not d.allow
	contains(d.reasons[0], "`load_extension()`")
}

test_unknown_actions_are_refused if {
	facts := {"sql": object.union(select(["projects"]).sql, {"unknown": ["the statement writes, but SQLite names no table"]})}
	not authz.decision.allow with input as calling(carol, sql_query, facts)
}

# --- Resources and prompts: granted by pattern, hidden above the clearance, read exactly when listed.

handbook := {"uri": "toolgate://hr/policy://handbook", "template": false, "upstream": "hr", "original": "policy://handbook", "classification": "internal", "risk": "read"}

salary_bands := {"uri": "toolgate://hr/policy://salary-bands", "template": false, "upstream": "hr", "original": "policy://salary-bands", "classification": "confidential", "risk": "read"}

investigations := {"uri": "toolgate://hr/policy://investigations/2026-q3", "template": false, "upstream": "hr", "original": "policy://investigations/2026-q3", "classification": "restricted", "risk": "read"}

undescribed := {"uri": "toolgate://hr/policy://new", "template": false, "upstream": "hr", "original": "policy://new", "classification": "restricted", "risk": "destructive"}

policy_question := {"name": "hr__policy_question", "upstream": "hr", "original": "policy_question", "classification": "internal", "risk": "read"}

performance_review := {"name": "hr__performance_review", "upstream": "hr", "original": "performance_review", "classification": "confidential", "risk": "read"}

on_resource(caller, resource, action) := object.union(caller, {"resource": resource, "action": action, "arguments": {}, "facts": {}})

on_prompt(caller, prompt, action) := object.union(caller, {"prompt": prompt, "action": action, "arguments": {}, "facts": {}})

test_hr_user_reads_documents_within_clearance if {
	authz.decision.allow with input as on_resource(alice, salary_bands, "list")
	authz.decision.allow with input as on_resource(alice, salary_bands, "read")
	authz.decision.allow with input as on_resource(alice, salary_bands, "subscribe")
	not authz.decision.allow with input as on_resource(alice, investigations, "list")
	not authz.decision.allow with input as on_resource(alice, investigations, "read")
	authz.decision.allow with input as on_resource(carol, investigations, "read")
}

test_engineer_reads_only_the_handbook if {
	authz.decision.allow with input as on_resource(bob, handbook, "read")
	not authz.decision.allow with input as on_resource(bob, salary_bands, "list")
	authz.decision.allow with input as on_prompt(bob, policy_question, "get")
	not authz.decision.allow with input as on_prompt(bob, performance_review, "list")
}

test_agent_alone_reads_no_hr_document if {
	not authz.decision.allow with input as on_resource(nightly, handbook, "list")
	not authz.decision.allow with input as on_prompt(nightly, policy_question, "list")
}

test_undescribed_resource_is_shown_to_nobody if {
	not authz.decision.allow with input as on_resource(carol, undescribed, "list")
}

test_resource_and_prompt_actions_are_their_own if {
	# A tool's action on a resource, or a resource's action on a prompt, is never allowed.
	not authz.decision.allow with input as on_resource(carol, handbook, "call")
	not authz.decision.allow with input as on_prompt(carol, policy_question, "read")
	authz.decision.allow with input as on_prompt(carol, performance_review, "get")
	authz.decision.allow with input as on_prompt(carol, performance_review, "complete")
}

test_hidden_resource_says_why if {
	authz.decision.reasons == ["`toolgate://hr/policy://investigations/2026-q3` is not available to you"] with input as on_resource(alice, investigations, "read")
}

test_hr_user_chain_clearance_caps_documents if {
	capped := object.union(alice, {"scope": {"token": null, "clearance": "internal"}})
	authz.decision.allow with input as on_resource(capped, handbook, "read")
	not authz.decision.allow with input as on_resource(capped, salary_bands, "read")
}

test_an_upstream_may_ask_the_client_of_a_read_or_prompt_the_caller_may_make if {
	authz.decision.allow with input as on_prompt(carol, performance_review, "elicit")
	authz.decision.allow with input as on_resource(alice, handbook, "sample")
	not authz.decision.allow with input as on_prompt(bob, performance_review, "elicit")
	not authz.decision.allow with input as on_resource(alice, investigations, "sample")
}

test_an_upstream_may_ask_the_client_of_a_call_the_caller_may_make if {
	sampling := object.union(alice, {"tool": hr_lookup, "action": "sample", "arguments": {"messages": []}, "facts": {}})
	authz.decision.allow with input as sampling
	not authz.decision.allow with input as object.union(sampling, {"action": "elicit", "tool": mystery})
	not authz.decision.allow with input as object.union(bob, {"tool": hr_lookup, "action": "sample", "arguments": {}, "facts": {}})
}
