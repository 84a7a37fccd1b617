package deploy

import (
	"os"
	"reflect"
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
