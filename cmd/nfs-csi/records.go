package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/example/nfs-csi/pkg/nfs"
)

// runRecords is "nfs-csi records": the admin's read-only view of a share's
// volumes, stale records and orphaned directories.
func runRecords(args []string) int {
	fs := flag.NewFlagSet("records", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: nfs-csi records --server S --share P [--mount-options O] [--workdir D]\n"+
			"       nfs-csi records --path DIR\n\n"+
			"Lists the volumes the driver recorded on a share, the records whose directory is missing\n"+
			"and the directories that are no volume. Read-only: the share is mounted with ro.\n\n")
		fs.PrintDefaults()
	}
	server := fs.String("server", "", "the NFS server, as in the StorageClass")
	share := fs.String("share", "", "the exported path, as in the StorageClass")
	mountOptions := fs.String("mount-options", "", "comma-separated NFS mount options, such as nfsvers=4.1")
	workDir := fs.String("workdir", os.TempDir(), "directory under which the share is mounted for the listing")
	dir := fs.String("path", "", "list a share already mounted at this path instead of mounting one")
	timeout := fs.Duration("timeout", 5*time.Minute, "bound on the mount and the listing")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var inv nfs.Inventory
	var err error
	switch {
	case *dir != "":
		inv, err = nfs.InspectPath(*dir)
	case *server != "" && *share != "":
		var opts []string
		if opts, err = nfs.ParseMountOptions(*mountOptions); err != nil {
			break
		}
		if err = nfs.ValidateServer(*server); err != nil {
			break
		}
		if err = nfs.ValidateShare(*share); err != nil {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		inv, err = nfs.InspectShare(ctx, &nfs.SystemMounter{}, *server, *share, opts, *workDir)
	default:
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "nfs-csi records: %v\n", err)
		return 1
	}
	if err := inv.Print(os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "nfs-csi records: %v\n", err)
		return 1
	}
	return 0
}
