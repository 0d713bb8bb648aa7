// ocibuild writes a container image from directories on disk, without a container engine: each --layer
// directory becomes one layer (a tar with fixed timestamps and root ownership, so the same files always give
// the same digest), the config gets the entrypoint, environment and platform, and the image is written as a
// tarball that `ctr images import` (or `docker load`) reads, tagged with --name.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// epoch is every file's modification time: layers depend on content only.
var epoch = time.Unix(0, 0).UTC()

// layerTar packs dir as a layer rooted at /. Directories, regular files and symlinks keep their mode; hard links
// are written as regular files.
func layerTar(dir string) ([]byte, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		info, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Name: rel, Mode: int64(info.Mode().Perm()), ModTime: epoch, Format: tar.FormatPAX}
		if info.Mode()&os.ModeSticky != 0 {
			hdr.Mode |= 01000
		}
		if info.Mode()&os.ModeSetuid != 0 {
			hdr.Mode |= 04000
		}
		switch {
		case info.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
		case info.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return nil, err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case info.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		default:
			return nil, fmt.Errorf("%s: unsupported file type %v (only directories, files and symlinks go into a layer)", p, info.Mode().Type())
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func run() error {
	var layers, env, entrypoint, cmd list
	ref := flag.String("name", "", "image reference to tag the image with, e.g. localhost/spiderpool:0.1.0")
	out := flag.String("out", "", "tarball to write")
	workdir := flag.String("workdir", "/", "working directory")
	flag.Var(&layers, "layer", "directory whose content becomes one layer (repeatable, bottom first)")
	flag.Var(&env, "env", "KEY=VALUE in the config (repeatable)")
	flag.Var(&entrypoint, "entrypoint", "entrypoint element (repeatable)")
	flag.Var(&cmd, "cmd", "cmd element (repeatable)")
	flag.Parse()
	if *ref == "" || *out == "" || len(layers) == 0 {
		return fmt.Errorf("usage: ocibuild --name REF --out FILE.tar --layer DIR [--layer DIR]... [--env K=V] [--entrypoint X] [--cmd X]")
	}
	tag, err := name.NewTag(*ref)
	if err != nil {
		return fmt.Errorf("--name %q: %w", *ref, err)
	}
	img := empty.Image
	for _, dir := range layers {
		data, err := layerTar(dir)
		if err != nil {
			return fmt.Errorf("layer %s: %w", dir, err)
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		})
		if err != nil {
			return err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "ocibuild --layer " + filepath.Base(dir)}})
		if err != nil {
			return err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", "amd64", v1.Time{Time: epoch}
	cf.Config.Env, cf.Config.Entrypoint, cf.Config.Cmd, cf.Config.WorkingDir = env, entrypoint, cmd, *workdir
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}
	img = mutate.MediaType(img, "application/vnd.oci.image.manifest.v1+json")
	img = mutate.ConfigMediaType(img, "application/vnd.oci.image.config.v1+json")
	tmp := *out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	fmt.Printf("%s %s\n", tag.Name(), digest)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ocibuild:", err)
		os.Exit(1)
	}
}
