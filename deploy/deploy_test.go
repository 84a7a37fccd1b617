// Package deploy holds what an operator deploys; these tests check it with
// what can run here (no Docker engine): the example configuration loads,
// and the compose file's services, images and mounted files resolve.
package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/declinemon/declinemon/pipeline"
)

func TestExampleConfigLoads(t *testing.T) {
	c, err := pipeline.LoadConfig("declinemon.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Detection.Maintenance) != 1 || c.Detection.Rules["network_outage"].MinAffected != 5 {
		t.Errorf("example config not read as documented: %+v", c.Detection)
	}
	if err := c.Kafka.Validate(); err != nil {
		t.Errorf("example kafka section invalid: %v", err)
	}
}

func TestComposeFile(t *testing.T) {
	data, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image string `yaml:"image"`
			Build *struct {
				Context    string `yaml:"context"`
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
			Volumes   []string       `yaml:"volumes"`
			DependsOn map[string]any `yaml:"depends_on"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	if len(compose.Services) == 0 {
		t.Fatal("no services")
	}
	for name, svc := range compose.Services {
		if svc.Image == "" && svc.Build == nil {
			t.Errorf("%s: neither image nor build", name)
		}
		if svc.Image != "" && !strings.Contains(svc.Image, ":") {
			t.Errorf("%s: image %q is not pinned to a tag", name, svc.Image)
		}
		if svc.Build != nil {
			if _, err := os.Stat(filepath.Join("..", svc.Build.Context, svc.Build.Dockerfile)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		for dep := range svc.DependsOn {
			if _, ok := compose.Services[dep]; !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
			}
		}
		for _, v := range svc.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("%s mounts missing file: %v", name, err)
				}
			} else if _, ok := compose.Volumes[src]; !ok {
				t.Errorf("%s uses undeclared volume %s", name, src)
			}
		}
	}
}

func TestDockerfilePinned(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "FROM" && !strings.Contains(f[1], ":") {
			t.Errorf("base image not pinned: %s", line)
		}
		if strings.HasPrefix(line, "USER") && strings.Contains(line, "root") && !strings.Contains(line, "nonroot") {
			t.Errorf("runs as root: %s", line)
		}
	}
}
