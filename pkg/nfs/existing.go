package nfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Existing directories brought under the driver: `nfs-csi import` (a static
// PV's directory, a volume of another cluster) and `nfs-csi migrate` (a
// directory of nfs-subdir-external-provisioner). Both go through Provision,
// so that they meet exactly CreateVolume's checks: the share root, the
// metadata directory, symlinks, another volume's record, nesting inside or
// around another volume.

// SubDirOf turns p, a directory relative to share or an absolute path on the
// server below it (as an in-tree `nfs:` PV's path is), into the subDir that
// ValidateSubDir accepts. A path outside the share, the share root itself and
// anything ValidateSubDir refuses are errors that name share and p.
func SubDirOf(share, p string) (string, error) {
	if err := ValidateShare(share); err != nil {
		return "", err
	}
	sub := p
	if strings.HasPrefix(p, "/") {
		if path.Clean(p) != p {
			return "", fmt.Errorf("path %q is not clean (no trailing '/', '//', '.' or '..'); write it as %s", p, path.Clean(p))
		}
		rel, ok := strings.CutPrefix(p, strings.TrimSuffix(share, "/")+"/")
		if p == share {
			rel, ok = "", true
		}
		if !ok {
			return "", fmt.Errorf("path %s is outside the share %s", p, share)
		}
		sub = rel
	}
	if sub == "" {
		return "", fmt.Errorf("path %q is the root of share %s: a volume needs a directory of its own below the share", p, share)
	}
	if err := ValidateSubDir(sub); err != nil {
		return "", fmt.Errorf("path %q on share %s: %w", p, share, err)
	}
	return sub, nil
}

// ErrNoDirectory is the refusal to record a directory that does not exist.
var ErrNoDirectory = errors.New("the directory does not exist")

// RecordExisting writes the creation record rec of vol's directory, which
// must exist, with CreateVolume's checks (Provision): it refuses the share
// root, a directory with another volume's record or tombstone of another
// claim, and one inside or around another volume's. owned=false marks the
// record adopted, so that no delete policy ever removes the data (import);
// owned=true makes the directory the volume's own, so that its policy
// applies (migrate, for directories the replaced provisioner made for the
// same claim). Nothing is created on the share but records. Running it again
// for the same volume ID and name is a no-op that returns the stored record.
func RecordExisting(sh *Share, vol Volume, rec Record, owned bool) (Record, error) {
	if err := RefuseShareRoot(vol); err != nil {
		return Record{}, err
	}
	if err := vol.Validate(); err != nil {
		return Record{}, err
	}
	ok, err := DirExists(sh, vol.SubDir)
	if err != nil {
		return Record{}, fmt.Errorf("volume %s: %s on %s: %w", vol.ID(), vol.SubDir, vol.ShareSource(), err)
	}
	if !ok {
		return Record{}, fmt.Errorf("volume %s: %w: %s on %s (or a component of it is a symlink); check the path, nothing was written",
			vol.ID(), ErrNoDirectory, vol.SubDir, vol.ShareSource())
	}
	return Provision(sh, vol, rec, ProvisionOptions{
		AdoptExisting: true,
		Owned:         owned,
		Compatible: func(stored Record) error {
			if stored.IsVolume(vol.ID()) && stored.HasName(rec.Name) && !stored.ForeignTo(rec.ClusterID) {
				return nil
			}
			return fmt.Errorf("%w: directory %s on %s already belongs to volume %q (%s)%s; nothing was written. "+
				"Import it under that volume's own PV, or retire that volume first",
				ErrRecordExists, vol.SubDir, vol.ShareSource(), stored.Name, stored.VolumeID, ofCluster(stored))
		},
	})
}

func ofCluster(r Record) string {
	if r.ClusterID == "" {
		return ""
	}
	return fmt.Sprintf(" of cluster %q", r.ClusterID)
}

// ShareAt is the share mounted, by someone else, at dir: an admin's mount,
// or the exported directory itself on the NFS server. source ("server:share")
// is for messages. Commands that run beside the controller use it; close
// releases the file descriptors and never unmounts.
func ShareAt(dir, source string) (sh *Share, closeShare func(), err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open share %s at %s: %w", source, dir, err)
	}
	ready := make(chan struct{})
	close(ready)
	e := &shareEntry{path: dir, source: source, rootFd: fd, recFd: -1, ready: ready, refs: 1}
	sh = &Share{sm: &ShareMounts{shares: map[string]*shareEntry{}}, e: e}
	return sh, func() {
		if e.recFd >= 0 {
			unix.Close(e.recFd)
		}
		unix.Close(e.rootFd)
	}, nil
}

// MountShare mounts server:share with options (plus the controller's nolock)
// in a new directory under workDir, for a command run beside the controller.
// done releases and unmounts it and removes the directory.
func MountShare(ctx context.Context, m Mounter, server, share string, options []string, workDir string) (sh *Share, done func(), err error) {
	dir, err := os.MkdirTemp(workDir, "nfs-csi-share-")
	if err != nil {
		return nil, nil, err
	}
	sm, err := NewShareMounts(m, dir, time.Hour)
	if err != nil {
		_ = os.Remove(dir)
		return nil, nil, err
	}
	sh, err = sm.Acquire(ctx, server, share, options)
	if err != nil {
		sm.Close()
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	return sh, func() {
		sh.Release()
		sm.Close()
		_ = os.Remove(dir)
	}, nil
}
