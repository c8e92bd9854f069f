package nfs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// A volume created from a snapshot or another volume is filled after its
// directory is made. A fill marker beside the records, "fill-<key of the
// subDir>", says from what and how far: "copying <source ID>" while the copy
// runs, "done <source ID>" once it is complete. It is written before the
// volume's record, so that a crash anywhere leaves a marker that the retry
// of CreateVolume finds: "copying" starts the copy again from an empty
// directory, "done" answers at once. It goes with the volume's record.

// FillState is how far a volume's fill is.
type FillState string

// The states of a fill.
const (
	FillNew     FillState = "new" // this call wrote the marker
	FillCopying FillState = "copying"
	FillDone    FillState = "done"
)

// ErrFillConflict is a CreateVolume whose volume exists with other content.
var ErrFillConflict = errors.New("the volume exists with other content")

func fillKey(subDir string) string { return "fill-" + recordKey(subDir) }

// fillSource is how a source ID is kept in the marker: whole when it fits
// in a symlink, otherwise as a hash.
func fillSource(id string) string {
	if len(id) > 900 {
		return hashField(id)
	}
	return id
}

// BeginFill writes vol's fill marker for source (a snapshot or volume ID),
// or reads the one a previous call wrote. A marker for another source is
// ErrFillConflict.
func BeginFill(sh *Share, vol Volume, source string) (FillState, error) {
	recFd, err := sh.RecordDirFd()
	if err != nil {
		return "", err
	}
	err = unix.Symlinkat(string(FillCopying)+" "+fillSource(source), recFd, fillKey(vol.SubDir))
	if err == nil {
		return FillNew, nil
	}
	if err != unix.EEXIST {
		return "", fmt.Errorf("volume %s: write fill marker %s/%s: %w", vol.ID(), RecordDir, fillKey(vol.SubDir), err)
	}
	cur, err := readLink(recFd, fillKey(vol.SubDir))
	if err != nil {
		return "", err
	}
	state, src, _ := strings.Cut(cur, " ")
	if !fieldMatches(src, source) {
		return "", fmt.Errorf("%w: volume %s (%s on %s) is being or was filled from %s, not %s",
			ErrFillConflict, vol.ID(), vol.SubDir, vol.ShareSource(), src, source)
	}
	return FillState(state), nil
}

// FillMarked reports whether vol has a fill marker at all.
func FillMarked(sh *Share, vol Volume) (bool, error) {
	recFd, err := sh.RecordDirFd()
	if err != nil {
		return false, err
	}
	var st unix.Stat_t
	err = unix.Fstatat(recFd, fillKey(vol.SubDir), &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return false, nil
	}
	return err == nil, err
}

// AbandonFill removes vol's fill marker, when the volume was not created.
func AbandonFill(sh *Share, vol Volume) error {
	recFd, err := sh.RecordDirFd()
	if err != nil {
		return err
	}
	return removeFillMarker(recFd, vol.SubDir)
}

func removeFillMarker(recFd int, subDir string) error {
	if err := unix.Unlinkat(recFd, fillKey(subDir), 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove fill marker %s/%s for %q: %w", RecordDir, fillKey(subDir), subDir, err)
	}
	return nil
}

// FillVolume empties vol's directory (what an interrupted fill left) and
// copies into it the share directory srcRel (a volume's, or a snapshot's
// copy), then applies perm, when not nil, to the volume's directory and
// marks the fill done. skipVolumes keeps directories of other volumes
// inside the source out of the copy.
func FillVolume(ctx context.Context, sh *Share, vol Volume, source, srcRel string, skipVolumes bool, perm *uint32, fastest CopyMethod) (CopyResult, error) {
	recFd, err := sh.RecordDirFd()
	if err != nil {
		return CopyResult{}, err
	}
	dst, err := OpenBeneath(sh.RootFd(), vol.SubDir)
	if err != nil {
		return CopyResult{}, fmt.Errorf("volume %s: open %s on %s: %w", vol.ID(), vol.SubDir, vol.ShareSource(), err)
	}
	defer unix.Close(dst)
	w := treeRemoval{}
	if err := w.removeContents(dst, ".", vol.SubDir); err != nil {
		return CopyResult{}, fmt.Errorf("volume %s: empty %s on %s of an interrupted copy: %w", vol.ID(), vol.SubDir, vol.ShareSource(), err)
	}
	if len(w.busy) > 0 {
		return CopyResult{}, fmt.Errorf("volume %s: empty %s on %s of an interrupted copy: %w", vol.ID(), vol.SubDir, vol.ShareSource(), &BusyError{Files: w.busy})
	}
	src, err := OpenBeneath(sh.RootFd(), srcRel)
	if err != nil {
		return CopyResult{}, fmt.Errorf("volume %s: open the source %s on %s: %w", vol.ID(), srcRel, vol.ShareSource(), err)
	}
	defer unix.Close(src)
	opts := CopyOptions{Fastest: fastest, SrcRel: srcRel}
	if skipVolumes {
		opts.Skip = func(rel string) (bool, error) { return hasRecord(recFd, rel) }
	}
	start := time.Now()
	res, err := CopyTree(ctx, src, dst, opts)
	if err != nil {
		return res, fmt.Errorf("volume %s: fill %s on %s from %s: %w", vol.ID(), vol.SubDir, vol.ShareSource(), source, err)
	}
	if perm != nil {
		if err := unix.Fchmod(dst, *perm); err != nil {
			return res, fmt.Errorf("volume %s: chmod %o %s on %s: %w", vol.ID(), *perm, vol.SubDir, vol.ShareSource(), err)
		}
	}
	if err := replaceSymlink(recFd, fillKey(vol.SubDir), string(FillDone)+" "+fillSource(source)); err != nil {
		return res, fmt.Errorf("volume %s: mark fill done in %s/%s: %w", vol.ID(), RecordDir, fillKey(vol.SubDir), err)
	}
	klog.InfoS("Volume filled", "volumeID", vol.ID(), "path", vol.Source(), "source", source,
		"bytes", res.Bytes, "entries", res.Entries, "method", res.Method, "skipped", res.Skipped, "duration", time.Since(start))
	return res, nil
}
