package nfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// Inventory is what an admin sees of one share: the volumes the driver
// recorded, the records whose directory is missing, and the directories that
// nothing explains. TakeInventory only reads.
type Inventory struct {
	// Volumes are records with their directory: live volumes and the
	// tombstones of retained ones.
	Volumes []ListedRecord
	// StaleRecords have no directory: a create that crashed or was
	// abandoned, or a directory removed by hand. SubDir is empty when the
	// record does not say which directory it was for.
	StaleRecords []ListedRecord
	// Orphans are directories under the share that are no volume, no parent
	// of one, no parent the driver made, not the metadata directory and no
	// archive; only the topmost of each tree is listed.
	Orphans []string
}

// TakeInventory reads the records and walks the directories of the share
// whose root is open as rootFd. It does not descend into volumes (their
// contents are the users' data) nor into archives.
func TakeInventory(rootFd int) (Inventory, error) {
	var inv Inventory
	recFd, err := OpenBeneath(rootFd, RecordDir)
	if errors.Is(err, unix.ENOENT) {
		recFd = -1
	} else if err != nil {
		return inv, fmt.Errorf("open %s: %w", RecordDir, err)
	}
	var records []ListedRecord
	names := map[string]bool{}
	if recFd >= 0 {
		defer unix.Close(recFd)
		if records, err = NewSymlinkStore(recFd).List(); err != nil {
			return inv, err
		}
		if names, err = recordNames(recFd); err != nil {
			return inv, err
		}
	}
	byKey := map[string]*ListedRecord{}
	for i := range records {
		byKey[records[i].Key] = &records[i]
	}
	found := map[string]bool{}
	w := inventoryWalk{byKey: byKey, names: names, found: found}
	if inv.Orphans, err = w.visit(rootFd, ""); err != nil {
		return inv, err
	}
	for _, r := range records {
		if found[r.Key] {
			inv.Volumes = append(inv.Volumes, r)
			continue
		}
		// A volume nested in another (made before nesting was refused) is
		// not reached by the walk, which stays out of volumes.
		if r.SubDir != "" && recFd >= 0 {
			if ok, err := dirExistsAt(rootFd, r.SubDir); err != nil {
				return inv, err
			} else if ok {
				inv.Volumes = append(inv.Volumes, r)
				continue
			}
		}
		inv.StaleRecords = append(inv.StaleRecords, r)
	}
	sortListed(inv.Volumes)
	sortListed(inv.StaleRecords)
	slices.Sort(inv.Orphans)
	return inv, nil
}

type inventoryWalk struct {
	byKey map[string]*ListedRecord
	names map[string]bool
	found map[string]bool
}

// visit walks the directories below rel (open as fd, not closed if it is the
// root) and returns the topmost orphans among them. A directory with a volume
// below it is a parent, never an orphan.
func (w inventoryWalk) visit(fd int, rel string) (orphans []string, err error) {
	_, orphans, err = w.visitDir(fd, rel)
	return orphans, err
}

func (w inventoryWalk) visitDir(fd int, rel string) (hasVolume bool, orphans []string, err error) {
	dupFd, err := unix.Dup(fd)
	if err != nil {
		return false, nil, err
	}
	dir := os.NewFile(uintptr(dupFd), rel)
	defer dir.Close()
	if _, err := unix.Seek(dupFd, 0, 0); err != nil {
		return false, nil, err
	}
	entries, err := dir.ReadDir(-1)
	if err != nil {
		return false, nil, fmt.Errorf("list %q: %w", rel, err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ArchivePrefix) || rel == "" && e.Name() == MetadataDirName {
			continue
		}
		child := path.Join(rel, e.Name())
		key := recordKey(child)
		if r := w.byKey[key]; r != nil {
			w.found[key] = true
			if r.SubDir == "" {
				r.SubDir = child
			}
			hasVolume = true
			continue
		}
		sub, err := openDirAt(fd, e.Name())
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, ErrSymlink) {
				continue
			}
			return false, nil, fmt.Errorf("open %q: %w", child, err)
		}
		below, subOrphans, err := w.visitDir(sub, child)
		unix.Close(sub)
		if err != nil {
			return false, nil, err
		}
		switch {
		case below:
			hasVolume = true
			orphans = append(orphans, subOrphans...)
		case w.names[markerKey(child)]:
			// A parent the driver made, emptied of its volumes.
			orphans = append(orphans, subOrphans...)
		default:
			orphans = append(orphans, child)
		}
	}
	return hasVolume, orphans, nil
}

func dirExistsAt(rootFd int, rel string) (bool, error) {
	fd, err := OpenBeneath(rootFd, rel)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, ErrSymlink) {
			return false, nil
		}
		return false, err
	}
	unix.Close(fd)
	return true, nil
}

func sortListed(rs []ListedRecord) {
	slices.SortFunc(rs, func(a, b ListedRecord) int {
		if c := strings.Compare(a.SubDir, b.SubDir); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// Print writes the inventory for an admin, one table per kind.
func (inv Inventory) Print(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "VOLUMES (%d)\n", len(inv.Volumes))
	fmt.Fprintln(tw, "  SUBDIR\tNAME\tSTATE\tCLAIM\tCREATED\tCLUSTER")
	for _, r := range inv.Volumes {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", r.SubDir, r.Record.Name, recordState(r.Record), dash(r.Record.Claim()), created(r.Record), dash(r.Record.ClusterID))
	}
	fmt.Fprintf(tw, "\nSTALE RECORDS: a record, no directory (%d)\n", len(inv.StaleRecords))
	fmt.Fprintln(tw, "  SUBDIR\tNAME\tSTATE\tCREATED\tRECORD")
	for _, r := range inv.StaleRecords {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", dash(r.SubDir), r.Record.Name, recordState(r.Record), created(r.Record), path.Join(RecordDir, r.Key))
	}
	fmt.Fprintf(tw, "\nORPHANED DIRECTORIES: no volume, no parent of one, not made by the driver (%d)\n", len(inv.Orphans))
	for _, o := range inv.Orphans {
		fmt.Fprintf(tw, "  %s\n", o)
	}
	return tw.Flush()
}

func recordState(r Record) string {
	switch {
	case r.Tombstone:
		return "retained (tombstone)"
	case r.Adopted:
		return "adopted"
	}
	return "live"
}

func created(r Record) string {
	if r.Created == 0 {
		return "-"
	}
	return time.Unix(r.Created, 0).UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// InspectShare mounts server:share read-only under dir with options, takes
// its inventory and unmounts it again.
func InspectShare(ctx context.Context, m Mounter, server, share string, options []string, dir string) (Inventory, error) {
	target, err := os.MkdirTemp(dir, "records-")
	if err != nil {
		return Inventory{}, err
	}
	defer os.Remove(target)
	source := server + ":" + share
	opts := append(ControllerMountOptions(options), "ro")
	if err := m.Mount(ctx, source, target, opts); err != nil {
		return Inventory{}, fmt.Errorf("mount %s at %s: %w", source, target, err)
	}
	defer func() { _ = m.Unmount(context.Background(), target) }()
	return InspectPath(target)
}

// InspectPath takes the inventory of a share already mounted at dir.
func InspectPath(dir string) (Inventory, error) {
	fd, err := unix.Open(dir, dirOpenFlags, 0)
	if err != nil {
		return Inventory{}, fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	return TakeInventory(fd)
}
