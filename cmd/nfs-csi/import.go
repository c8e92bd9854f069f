package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/example/nfs-csi/pkg/driver"
	"github.com/example/nfs-csi/pkg/manifests"
	"github.com/example/nfs-csi/pkg/nfs"
)

// shareAccess is how a command reaches a share to write records: a mount the
// admin made (--share-mounted-at), or one of its own (--write-records).
type shareAccess struct {
	mountedAt    *string
	writeRecords *bool
	workDir      *string
	timeout      *time.Duration
	clusterID    *string
}

func addShareAccessFlags(fs *flag.FlagSet, what string) shareAccess {
	return shareAccess{
		mountedAt:    fs.String("share-mounted-at", "", "the share is mounted at this directory (read-write, root access): write "+what+" there"),
		writeRecords: fs.Bool("write-records", false, "mount the share under --workdir and write "+what+" (needs root and mount.nfs)"),
		workDir:      fs.String("workdir", os.TempDir(), "directory under which --write-records mounts the share"),
		timeout:      fs.Duration("timeout", 5*time.Minute, "bound on the mount"),
		clusterID:    fs.String("cluster-id", "", "the --cluster-id of the controller that is to own the volumes (kubectl get ns kube-system -o jsonpath={.metadata.uid} with --cluster-id=auto), written into the records"),
	}
}

// wanted says whether records are to be written.
func (a shareAccess) wanted() bool { return *a.mountedAt != "" || *a.writeRecords }

// open returns the share, or nil when no records are to be written.
func (a shareAccess) open(server, share string, options []string) (*nfs.Share, func(), error) {
	if *a.mountedAt != "" {
		return nfs.ShareAt(*a.mountedAt, server+":"+share)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *a.timeout)
	defer cancel()
	return nfs.MountShare(ctx, &nfs.SystemMounter{}, server, share, options, *a.workDir)
}

// runImport is "nfs-csi import": PV and PVC YAML for existing directories,
// and optionally their creation records, marked adopted.
func runImport(args []string) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: nfs-csi import --server S --share P (--subdir D --claim NS/NAME [--pv NAME] | --list FILE) [options]\n\n"+
			"Writes to stdout a PV and a PVC for each existing directory, pre-bound to each other by name, for kubectl apply.\n"+
			"With --share-mounted-at or --write-records it first writes each directory's creation record, marked adopted:\n"+
			"the driver then never deletes or archives it, hands it to no other claim, and refuses volumes inside or around it.\n"+
			"Directories outside the share, the share root and directories of another volume are refused.\n"+
			"A --list file has one directory a line: <path> <namespace>/<claim> [<pv-name>].\n\n")
		fs.PrintDefaults()
	}
	server := fs.String("server", "", "the NFS server, as in the StorageClass")
	share := fs.String("share", "", "the exported path, as in the StorageClass")
	mountOptions := fs.String("mount-options", "", "comma-separated NFS mount options of the volumes, such as nfsvers=4.1")
	subDir := fs.String("subdir", "", "the directory: relative to the share, or an absolute path on the server below it")
	claim := fs.String("claim", "", "the claim to write for --subdir, as namespace/name")
	pvName := fs.String("pv", "", "the PV's name for --subdir; default <namespace>-<claim>")
	list := fs.String("list", "", "a file listing the directories to import ('-': stdin)")
	capacity := fs.String("capacity", "1Gi", "the PVs' capacity and the claims' request (NFS does not enforce it)")
	accessMode := fs.String("access-mode", string(corev1.ReadWriteMany), "the access mode of PVs and claims")
	class := fs.String("storage-class", "", "the storageClassName of PVs and claims; \"\" keeps the default class away")
	reclaim := fs.String("reclaim-policy", string(corev1.PersistentVolumeReclaimRetain), "Retain, or Delete (the driver still never deletes an adopted directory)")
	driverName := fs.String("drivername", driver.DefaultDriverName, "the CSI driver name")
	access := addShareAccessFlags(fs, "the creation records")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "nfs-csi import: %v\n", err)
		return 1
	}
	opts, err := nfs.ParseMountOptions(*mountOptions)
	if err != nil {
		return fail(err)
	}
	size, err := resource.ParseQuantity(*capacity)
	if err != nil {
		return fail(fmt.Errorf("--capacity %q: %w", *capacity, err))
	}
	var specs []manifests.ImportSpec
	switch {
	case *list != "" && *subDir != "":
		return fail(fmt.Errorf("give --subdir or --list, not both"))
	case *list != "":
		in := os.Stdin
		if *list != "-" {
			if in, err = os.Open(*list); err != nil {
				return fail(err)
			}
			defer in.Close()
		}
		if specs, err = manifests.ParseImportList(in); err != nil {
			return fail(err)
		}
	case *subDir != "":
		ns, name, err := manifests.ParseClaim(*claim)
		if err != nil {
			return fail(fmt.Errorf("--claim: %w", err))
		}
		specs = []manifests.ImportSpec{{Path: *subDir, ClaimNamespace: ns, ClaimName: name, PVName: *pvName}}
	}
	vols, err := manifests.PlanImport(manifests.ImportOptions{
		Server: *server, Share: *share, MountOptions: opts, DriverName: *driverName, Capacity: size,
		AccessModes:  []corev1.PersistentVolumeAccessMode{corev1.PersistentVolumeAccessMode(*accessMode)},
		StorageClass: *class, ReclaimPolicy: corev1.PersistentVolumeReclaimPolicy(*reclaim),
	}, specs)
	if err != nil {
		return fail(err)
	}
	if access.wanted() {
		sh, done, err := access.open(*server, *share, opts)
		if err != nil {
			return fail(err)
		}
		err = manifests.RecordImports(sh, vols, *access.clusterID)
		done()
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(os.Stderr, "nfs-csi import: wrote %d creation records, marked adopted\n", len(vols))
	} else {
		fmt.Fprintln(os.Stderr, "nfs-csi import: YAML only; no creation records written and nothing checked on the share (use --share-mounted-at or --write-records)")
	}
	if err := manifests.WriteYAML(os.Stdout, manifests.Objects(vols)...); err != nil {
		return fail(err)
	}
	return 0
}
