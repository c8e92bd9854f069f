package nfs

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// makeCopySource builds a tree with every kind of entry the copy must keep.
func makeCopySource(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "a/deep/er"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "b"), 0o755))
	must(os.WriteFile(filepath.Join(root, "a/file"), []byte("hello"), 0o640))
	must(os.Chown(filepath.Join(root, "a/file"), 1234, 5678))
	must(os.WriteFile(filepath.Join(root, "a/deep/er/big"), bytes.Repeat([]byte("0123456789"), 300_000), 0o644))
	must(os.WriteFile(filepath.Join(root, "empty"), nil, 0o600))
	f, err := os.Create(filepath.Join(root, "sparse"))
	must(err)
	_, err = f.WriteAt([]byte("end"), 64<<20)
	must(err)
	_, err = f.WriteAt([]byte("start"), 0)
	must(err)
	must(f.Close())
	must(os.WriteFile(filepath.Join(root, "a/hard1"), []byte("linked"), 0o644))
	must(os.Link(filepath.Join(root, "a/hard1"), filepath.Join(root, "b/hard2")))
	must(os.Symlink("/etc/passwd", filepath.Join(root, "abs-link")))
	must(os.Symlink("../../outside", filepath.Join(root, "b/dangling")))
	must(os.Symlink("a", filepath.Join(root, "dir-link")))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o620))
	must(os.WriteFile(filepath.Join(root, "setuid"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chown(filepath.Join(root, "setuid"), 1000, 1000))
	must(os.Chmod(filepath.Join(root, "setuid"), 0o4755|fs.ModeSetuid))
	must(os.MkdirAll(filepath.Join(root, "ro"), 0o755))
	must(os.WriteFile(filepath.Join(root, "ro/inside"), []byte("x"), 0o444))
	must(os.Chmod(filepath.Join(root, "ro"), 0o555))
	must(os.MkdirAll(filepath.Join(root, "other-volume/data"), 0o755))
	must(os.WriteFile(filepath.Join(root, "other-volume/data/secret"), []byte("not yours"), 0o600))
	must(os.WriteFile(filepath.Join(root, ".nfs000000000000000100000002"), []byte("open elsewhere"), 0o600))
	must(os.WriteFile(filepath.Join(root, ".nfsrc"), []byte("a user's file"), 0o600))
	old := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			_ = unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}, unix.AT_SYMLINK_NOFOLLOW)
		}
		return nil
	})
	must(os.Chown(root, 4321, 4321))
	must(os.Chmod(root, 0o2775))
}

type entryInfo struct {
	mode     fs.FileMode
	uid, gid uint32
	size     int64
	mtime    unix.Timespec
	target   string
	data     string
	rdev     uint64
}

// treeInfo describes every entry below root, by relative path.
func treeInfo(t *testing.T, root string) map[string]entryInfo {
	t.Helper()
	out := map[string]entryInfo{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fi, _ := d.Info()
		e := entryInfo{mode: fi.Mode(), uid: st.Uid, gid: st.Gid, mtime: st.Mtim, rdev: st.Rdev}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			e.target, _ = os.Readlink(p)
		case fi.Mode().IsRegular():
			e.size = st.Size
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			b := make([]byte, 64)
			n, _ := f.Read(b)
			var tail [3]byte
			if st.Size > 3 {
				_, _ = f.ReadAt(tail[:], st.Size-3)
			}
			f.Close()
			e.data = string(b[:n]) + "..." + string(tail[:])
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func openDir(t *testing.T, p string) int {
	t.Helper()
	fd, err := unix.Open(p, dirOpenFlags, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestCopyTreeKeepsEverything(t *testing.T) {
	for _, tc := range []struct {
		fastest CopyMethod
		workers int
		// allowed are the methods the result may report: clone and
		// copy_file_range depend on the test machine's file system.
		allowed []CopyMethod
	}{
		{fastest: "", workers: 0, allowed: []CopyMethod{CopyClone, CopyRange, CopyReadWrite}},
		{fastest: CopyRange, workers: 1, allowed: []CopyMethod{CopyRange, CopyReadWrite}},
		{fastest: CopyReadWrite, workers: 3, allowed: []CopyMethod{CopyReadWrite}},
	} {
		t.Run(string(tc.fastest)+"/"+string(rune('0'+tc.workers)), func(t *testing.T) {
			base := t.TempDir()
			src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
			if err := os.Mkdir(src, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dst, 0o700); err != nil {
				t.Fatal(err)
			}
			makeCopySource(t, src)
			res, err := CopyTree(context.Background(), openDir(t, src), openDir(t, dst), CopyOptions{
				Fastest: tc.fastest, Workers: tc.workers, SrcRel: "vol",
				Skip: func(rel string) (bool, error) { return rel == "vol/other-volume", nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			okMethod := false
			for _, m := range tc.allowed {
				okMethod = okMethod || res.Method == m
			}
			if !okMethod {
				t.Errorf("method %q, want one of %v", res.Method, tc.allowed)
			}
			if len(res.Skipped) != 1 || res.Skipped[0] != "vol/other-volume" {
				t.Errorf("skipped %v, want [vol/other-volume]", res.Skipped)
			}
			want := treeInfo(t, src)
			for rel := range want {
				if rel == "other-volume" || strings.HasPrefix(rel, "other-volume/") || rel == ".nfs000000000000000100000002" {
					delete(want, rel)
				}
			}
			got := treeInfo(t, dst)
			for rel, w := range want {
				g, ok := got[rel]
				if !ok {
					t.Errorf("%s was not copied", rel)
					continue
				}
				if g != w {
					t.Errorf("%s: got %+v, want %+v", rel, g, w)
				}
			}
			for rel := range got {
				if _, ok := want[rel]; !ok {
					t.Errorf("%s was copied and should not have been", rel)
				}
			}
			var wantBytes int64
			for rel, w := range want {
				if w.mode.IsRegular() && rel != "b/hard2" { // one inode with a.hard1
					wantBytes += w.size
				}
			}
			if res.Bytes != wantBytes {
				t.Errorf("bytes %d, want %d", res.Bytes, wantBytes)
			}
			var a, b unix.Stat_t
			_ = unix.Stat(filepath.Join(dst, "a/hard1"), &a)
			_ = unix.Stat(filepath.Join(dst, "b/hard2"), &b)
			if a.Ino != b.Ino || a.Nlink != 2 {
				t.Errorf("hard links not kept: inodes %d and %d, nlink %d", a.Ino, b.Ino, a.Nlink)
			}
			var sp unix.Stat_t
			_ = unix.Stat(filepath.Join(dst, "sparse"), &sp)
			if sp.Blocks*512 > 1<<20 {
				t.Errorf("the sparse file's holes were filled: %d bytes allocated for 64 MiB", sp.Blocks*512)
			}
		})
	}
}

func TestCopyTreeRefusesNonEmptyDestinationEntries(t *testing.T) {
	base := t.TempDir()
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	_ = os.MkdirAll(src, 0o755)
	_ = os.MkdirAll(dst, 0o755)
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A symlink in the destination, where the copy would create a file,
	// must not be followed to overwrite what it points at.
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dst, "f")); err != nil {
		t.Fatal(err)
	}
	_, err := CopyTree(context.Background(), openDir(t, src), openDir(t, dst), CopyOptions{})
	if !errors.Is(err, unix.EEXIST) {
		t.Errorf("err %v, want EEXIST", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the symlink's target was overwritten: %q", b)
	}
}

func TestCopyTreeStopsWhenCancelled(t *testing.T) {
	base := t.TempDir()
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	_ = os.MkdirAll(src, 0o755)
	_ = os.MkdirAll(dst, 0o755)
	for i := range 50 {
		_ = os.WriteFile(filepath.Join(src, string(rune('a'+i%26))+string(rune('a'+i/26))), []byte("x"), 0o644)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := CopyTree(ctx, openDir(t, src), openDir(t, dst), CopyOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
}

// TestCopyTreeKeepsHolesWithoutSeek copies a sparse file as over NFSv3 and
// NFSv4.1, which have no SEEK: the whole file looks like data. The copy
// used to write the holes out as zeros there (copy_file_range falls back to
// the kernel's splice copy, and read-write wrote every block), which the
// UML test TestSnapshotCopyPaths caught.
func TestCopyTreeKeepsHolesWithoutSeek(t *testing.T) {
	seekBlind = true
	t.Cleanup(func() { seekBlind = false })
	for _, m := range []CopyMethod{CopyRange, CopyReadWrite} {
		t.Run(string(m), func(t *testing.T) {
			base := t.TempDir()
			src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
			_ = os.MkdirAll(src, 0o755)
			_ = os.MkdirAll(dst, 0o755)
			f, err := os.Create(filepath.Join(src, "sparse"))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = f.WriteAt([]byte("start"), 0)
			_, _ = f.WriteAt([]byte("middle"), 16<<20)
			_, _ = f.WriteAt([]byte("end"), 32<<20)
			f.Close()
			if _, err := CopyTree(context.Background(), openDir(t, src), openDir(t, dst), CopyOptions{Fastest: m}); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dst, "sparse"))
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != 32<<20+3 || string(b[:5]) != "start" || string(b[16<<20:16<<20+6]) != "middle" || string(b[32<<20:]) != "end" {
				t.Fatalf("copy is %d bytes, or its data moved", len(b))
			}
			var st unix.Stat_t
			_ = unix.Stat(filepath.Join(dst, "sparse"), &st)
			if st.Blocks*512 > 1<<20 {
				t.Errorf("holes filled: %d bytes allocated for 3 small extents", st.Blocks*512)
			}
		})
	}
}
