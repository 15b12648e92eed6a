package aws

import "testing"

func TestDockerignore(t *testing.T) {
	rules, err := parseDockerignore([]byte(`# secrets stay out of images
.git
*.env
/secrets
!secrets/public.txt
**/node_modules
docs/**/*.md
build/[a-c]?.o
`))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		".git": true, ".git/config": true, "src/.git": false,
		"prod.env": true, "config/prod.env": false,
		"secrets": true, "secrets/key.pem": true, "secrets/public.txt": false,
		"node_modules/x/index.js": true, "web/node_modules/x": true, "node_modules_backup": false,
		"docs/a/b/c.md": true, "docs/c.md": true, "docs/c.txt": false,
		"build/a1.o": true, "build/d1.o": false,
		"Dockerfile": false, "app/main.go": false,
	} {
		if got := rules.excluded(name); got != want {
			t.Errorf("excluded(%q) = %v, want %v", name, got, want)
		}
	}
	if _, err := parseDockerignore([]byte("build/[a-c.o\n")); err == nil {
		t.Error("an unterminated [ was taken")
	}
	if dockerignore(nil).excluded("anything") {
		t.Error("no rules excluded something")
	}
}
