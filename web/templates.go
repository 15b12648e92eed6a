package web

import (
	"fmt"
	"html/template"
)

var pageNames = []string{"pipelines", "pipeline", "job", "deployments", "error"}

// parseTemplates parses each page with the layout, into a set of its own.
func parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{"statusClass": statusClass, "statusWord": statusWord}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: templates: %w", err)
		}
		out[name] = t
	}
	return out, nil
}
