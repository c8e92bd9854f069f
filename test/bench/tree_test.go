package main

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// treeStats counts the regular files below dir and their bytes, and
// returns their contents concatenated in walk order.
func treeStats(t *testing.T, dir string) (files int, size int64, all []byte) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		files, size, all = files+1, size+int64(len(b)), append(all, b...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, size, all
}

func TestWriteRandomTree(t *testing.T) {
	for _, tc := range []struct {
		files int
		size  int64
	}{{1, 0}, {3, 10}, {2500, 2500 * 100}, {7, 1 << 20}} {
		dir := t.TempDir()
		if err := writeRandomTree(dir, tc.files, tc.size, 1); err != nil {
			t.Fatal(err)
		}
		files, size, all := treeStats(t, dir)
		if files != tc.files || size != tc.size {
			t.Errorf("writeRandomTree(%d files, %d bytes) made %d files of %d bytes", tc.files, tc.size, files, size)
		}
		if tc.size < 4096 {
			continue
		}
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		_, _ = w.Write(all)
		w.Close()
		if int64(z.Len()) < tc.size {
			t.Errorf("%d bytes gzipped to %d: compressible, the tarball floor would be too cheap", tc.size, z.Len())
		}
	}
}

func TestWriteRandomTreeIsTheSameEveryRun(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := writeRandomTree(a, 3, 3000, 7); err != nil {
		t.Fatal(err)
	}
	if err := writeRandomTree(b, 3, 3000, 7); err != nil {
		t.Fatal(err)
	}
	_, _, x := treeStats(t, a)
	_, _, y := treeStats(t, b)
	if !bytes.Equal(x, y) {
		t.Error("two trees of the same seed differ")
	}
}

func TestWriteTreeRefusesNoFiles(t *testing.T) {
	if err := writeRandomTree(t.TempDir(), 0, 10, 1); err == nil {
		t.Error("a tree of 0 files holding 10 bytes was accepted")
	}
}

func TestWriteEmptyTree(t *testing.T) {
	dir := t.TempDir()
	if err := writeEmptyTree(dir, 2345); err != nil {
		t.Fatal(err)
	}
	files, size, _ := treeStats(t, dir)
	dirs, _ := os.ReadDir(dir)
	if files != 2345 || size != 0 || len(dirs) != 3 {
		t.Errorf("writeEmptyTree(2345) made %d files of %d bytes in %d directories, want 2345 empty files in 3", files, size, len(dirs))
	}
}

func TestPct(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[int]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 1: time.Millisecond} {
		if got := pct(d, p); got != want {
			t.Errorf("pct(1..100 ms, %d) = %v, want %v", p, got, want)
		}
	}
	if got := pct([]time.Duration{5}, 99); got != 5 {
		t.Errorf("pct of one sample = %v, want it", got)
	}
	if d[0] != 100*time.Millisecond {
		t.Error("pct sorted its argument in place")
	}
}
