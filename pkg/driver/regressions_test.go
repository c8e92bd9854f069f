package driver

import (
	"testing"
)

func TestRegressionDuplicateKeys(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		p, err := parseCreateParams(withParams(map[string]string{"subDir": "a", "subdir": "b"}))
		if err != nil {
			return
		}
		seen[p.SubDirTemplate] = true
	}
	if len(seen) > 1 {
		t.Fatalf("subDir and subdir both given: result varies between runs: %v", seen)
	}
}

func TestRegressionCloseTwice(t *testing.T) {
	e := newEnv(t)
	e.close()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("second Close panicked: %v", r)
		}
	}()
	e.d.Close()
}
