package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBusinessTimezone: one business time zone feeds alert texts
// (detection), the replay summary and storage's calendar; it defaults to
// Asia/Shanghai, comes from business_timezone, DECLINEMON_BUSINESS_TIMEZONE
// or the older clickhouse.business_timezone, and two that disagree are an
// error.
func TestBusinessTimezone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	load := func(yaml string) (Config, error) {
		t.Helper()
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		return LoadConfig(path)
	}
	for _, tc := range []struct {
		name, yaml, env, want string
	}{
		{"default", "", "", "Asia/Shanghai"},
		{"top-level key", "business_timezone: America/New_York\n", "", "America/New_York"},
		{"clickhouse key alone", "clickhouse:\n  business_timezone: Asia/Kolkata\n", "", "Asia/Kolkata"},
		{"both, equal", "business_timezone: Asia/Kolkata\nclickhouse:\n  business_timezone: Asia/Kolkata\n", "", "Asia/Kolkata"},
		{"environment", "", "Europe/Berlin", "Europe/Berlin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("DECLINEMON_BUSINESS_TIMEZONE", tc.env)
			}
			c, err := load(tc.yaml)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Location().String(); got != tc.want {
				t.Errorf("Location() = %s, want %s", got, tc.want)
			}
			if c.Detection.Location == nil || c.Detection.Location.String() != tc.want {
				t.Errorf("detection location %v, want %s", c.Detection.Location, tc.want)
			}
			if c.ClickHouse.BusinessTimezone != tc.want {
				t.Errorf("clickhouse.business_timezone %q, want %s", c.ClickHouse.BusinessTimezone, tc.want)
			}
		})
	}
	for yaml, want := range map[string]string{
		"business_timezone: Asia/Kolkata\nclickhouse:\n  business_timezone: Asia/Shanghai\n": "differ",
		"business_timezone: Mars/Olympus\n":                                                  "business_timezone: \"Mars/Olympus\" is not an IANA time zone",
		"business_timezone: Local\n":                                                         "is not an IANA time zone",
	} {
		if _, err := load(yaml); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", yaml, err, want)
		}
	}
	if got := (Config{}).Location().String(); got != "Asia/Shanghai" {
		t.Errorf("zero Config's Location() = %s, want Asia/Shanghai", got)
	}
}
