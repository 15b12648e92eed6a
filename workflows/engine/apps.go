package engine

// App is a deployable application: a repository and the environments it
// ships to. An environment is also a context: a job with
// `context: production` in a pipeline of this app deploys to production.
type App struct {
	Name         string
	Repo         string // "owner/name"
	Environments map[string]*Environment
	// LockAfterRollback locks an environment once a rollback's release
	// there succeeded, so that the next push does not roll forward again.
	LockAfterRollback bool
}

// Environment is where an app is deployed, and who may do what there.
// It is also a context of its app: its variables and secrets go to the
// jobs that deploy there.
type Environment struct {
	Name string
	// Context holds the environment's variables and secrets (its Name is
	// the environment's).
	Context Context
	// Approvers may approve a deploy here (chat user or user group IDs).
	// An environment with approvers is protected: every deploy to it
	// waits for one of them (see advancer.ready). Empty: not protected.
	Approvers []string
	// AllowSelfApproval lets the change's authors approve its deploy.
	AllowSelfApproval bool
	// Deployers may start a deploy here from chat and lock it (see
	// MayDeploy, MayLock). Empty means anyone. It never skips an approval.
	Deployers []string
}

// Context is a named set of environment variables given to jobs that list
// it. Secrets are given too, and masked in logs.
type Context struct {
	Name    string
	Env     map[string]string
	Secrets map[string]string
}
