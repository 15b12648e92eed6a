// Package engine runs planned pipelines durably: every decision (a job
// started, ended, approved, a lock taken, a deployment recorded) is a
// transaction in a Store before it takes effect, so that a new Engine on
// the same store resumes where a dead one stopped. It owns the small
// interfaces it runs through: Store, Executor, NativeRunner, Notifier.
// It imports the config language (package workflows) and nothing of
// Slack, GitHub, AWS, Docker or SQL.
package engine
