package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/example/nfs-csi/pkg/driver"
	"github.com/example/nfs-csi/pkg/manifests"
)

// templateFlags collects --template CLASS=TEMPLATE.
type templateFlags map[string]string

func (t templateFlags) String() string { return fmt.Sprint(map[string]string(t)) }

func (t templateFlags) Set(s string) error {
	class, tmpl, ok := strings.Cut(s, "=")
	if !ok || class == "" || tmpl == "" {
		return fmt.Errorf("want CLASS=TEMPLATE, such as nfs-client=${pvc.metadata.namespace}/${pvc.metadata.name}")
	}
	t[class] = tmpl
	return nil
}

// runMigrate is "nfs-csi migrate": the switch-over from
// nfs-subdir-external-provisioner or nfs-client-provisioner, as a script.
func runMigrate(args []string) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: kubectl get pv,pvc,sc -A -o json > old.json\n"+
			"       nfs-csi migrate --from old.json [--share-mounted-at DIR --cluster-id ID] > switch-over.sh\n\n"+
			"Reads the PVs, PVCs and StorageClasses of nfs-subdir-external-provisioner or nfs-client-provisioner\n"+
			"(no cluster access) and writes a shell script that switches them to this driver in place: the classes\n"+
			"under the same names, and for each bound claim a PV of this driver for the same directory. Read it, then run it.\n"+
			"With --share-mounted-at or --write-records it first writes each directory's creation record, so that\n"+
			"deleting a claim applies its class's onDelete as the old provisioner did. See docs/migrate.md.\n\n")
		fs.PrintDefaults()
	}
	from := fs.String("from", "-", "the JSON (or YAML) of kubectl get pv,pvc,sc -A -o json; '-': stdin")
	driverName := fs.String("drivername", driver.DefaultDriverName, "the CSI driver name")
	provisioners := fs.String("provisioner", strings.Join(manifests.DefaultOldProvisioners, ","), "comma-separated provisioner names to migrate from")
	share := fs.String("share", "", "the old provisioner's NFS_PATH; default: read off the PVs' paths")
	server := fs.String("server", "", "the old provisioner's NFS_SERVER, for classes without a bound volume (with --share)")
	templates := templateFlags{}
	fs.Var(templates, "template", "CLASS=TEMPLATE: the subDir template for new claims of a class whose pathPattern cannot be translated (repeatable)")
	access := addShareAccessFlags(fs, "the creation records")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "nfs-csi migrate: %v\n", err)
		return 1
	}
	in := os.Stdin
	if *from != "-" {
		f, err := os.Open(*from)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		in = f
	}
	inv, err := manifests.ReadInventory(in)
	if err != nil {
		return fail(err)
	}
	m, err := manifests.PlanMigration(inv, manifests.MigrateOptions{
		DriverName: *driverName, Provisioners: strings.Split(*provisioners, ","), Share: *share, Server: *server, Templates: templates,
	})
	if err != nil {
		return fail(err)
	}
	script := manifests.ScriptOptions{Input: *from}
	if access.wanted() && len(m.Volumes) > 0 {
		vol := m.Volumes[0].New.Volume
		sh, done, err := access.open(vol.Server, vol.Share, vol.MountOptions)
		if err != nil {
			return fail(err)
		}
		skipped, err := manifests.RecordMigration(sh, m, vol.Server, vol.Share, *access.clusterID)
		done()
		if err != nil {
			return fail(err)
		}
		if len(skipped) > 0 {
			return fail(fmt.Errorf("PVs %s are on another share than %s; migrate one share at a time (--provisioner)", strings.Join(skipped, ", "), vol.ShareSource()))
		}
		script.Records = vol.ShareSource()
		fmt.Fprintf(os.Stderr, "nfs-csi migrate: wrote %d creation records on %s\n", len(m.Volumes), vol.ShareSource())
	}
	for _, n := range m.Notes {
		fmt.Fprintf(os.Stderr, "nfs-csi migrate: note: %s\n", n)
	}
	if err := m.WriteScript(os.Stdout, script); err != nil {
		return fail(err)
	}
	return 0
}
