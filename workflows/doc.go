// Package workflows is slipway's domain: the CircleCI 2.1 config language
// (parse, compile, plan a DAG of jobs for a trigger) and the engine that
// runs plans durably through small interfaces it owns (Executor, Store,
// Notifier). It imports no Slack, GitHub, AWS, Docker or SQL code.
package workflows
