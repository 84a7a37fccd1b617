package deploy

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/declinemon/declinemon/pipeline"
)

// TestExampleConfigDocumentsEveryKey keeps the configuration reference
// (deploy/declinemon.example.yaml) complete: every yaml key of the
// configuration structs appears in it.
func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("declinemon.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	var walk func(t reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ.PkgPath() == "time" {
			return
		}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")
			if tag[0] == "-" || !f.IsExported() {
				continue
			}
			if len(tag) > 1 && tag[1] == "inline" {
				walk(f.Type, path)
				continue
			}
			if tag[0] == "" {
				continue
			}
			if !strings.Contains(text, tag[0]+":") {
				t.Errorf("configuration key %s%s is not documented in declinemon.example.yaml", path, tag[0])
			}
			walk(f.Type, path+tag[0]+".")
		}
	}
	walk(reflect.TypeOf(pipeline.Config{}), "")
}

// TestEnvOverridesDocumented keeps the README's and the operations guide's
// lists of environment overrides complete and free of variables that do
// not exist.
func TestEnvOverridesDocumented(t *testing.T) {
	names := map[string]bool{}
	for _, o := range pipeline.EnvOverrides {
		names[o.Name] = true
	}
	mentioned := regexp.MustCompile(`DECLINEMON_[A-Z0-9_]+`)
	for _, doc := range []string{"../README.md", "../docs/operations.md"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for name := range names {
			if !strings.Contains(string(data), name) {
				t.Errorf("%s does not list %s", doc, name)
			}
		}
		for _, m := range mentioned.FindAllString(string(data), -1) {
			if !names[m] && !strings.HasPrefix(m, "DECLINEMON_KAFKA_REQUIRED") && !strings.HasPrefix(m, "DECLINEMON_KAFKA_LIBS") &&
				!strings.HasPrefix(m, "DECLINEMON_ALERTMANAGER_REQUIRED") {
				t.Errorf("%s mentions %s, which is not an override", doc, m)
			}
		}
	}
}
