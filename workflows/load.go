package workflows

import "errors"

// LoadOptions say where orbs come from and what the operator allows.
type LoadOptions struct {
	// OrbDirs are folders searched, in order, for vendored orbs: the
	// repository's .circleci/orbs, then the server's orb folder.
	OrbDirs []string
	// AllowMachine lets `machine` jobs run on the host.
	AllowMachine bool
}

// Config is a loaded config file, ready to be planned for triggers.
type Config struct{}

// Load parses and checks a config file.
func Load(name string, src []byte, opts LoadOptions) (*Config, error) {
	return nil, errors.New("workflows: language not landed yet")
}

// Plan decides which workflows and jobs run for t.
func (c *Config) Plan(t Trigger) (*Plan, error) {
	return nil, errors.New("workflows: language not landed yet")
}
