package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// version is set with -ldflags "-X main.version=..." like the other commands.
var version = "dev"

const usage = `imagebuild builds bgplb's images, chart package and manifest bundle.

Usage:
  imagebuild build    [-out _output/image] [-version V] [-repo R] [-podserver-repo R] [-images bgplb,podserver] [-platforms linux/amd64,linux/arm64]
  imagebuild push     -layout _output/image/bgplb -image registry/repo:tag
  imagebuild extract  -layout _output/image/bgplb [-platform linux/amd64] -out DIR [-flat]
  imagebuild tar      -layout _output/image/bgplb -out FILE
  imagebuild chart    [-dir manifests/charts/bgplb] -version V -out DIR [-layout _output/image/bgplb] [-repo R]
  imagebuild manifest [-base manifests/base] -layout _output/image/bgplb [-repo R] -out FILE
  imagebuild digest   -layout _output/image/bgplb
  imagebuild version
`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "imagebuild: %v\n", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	switch cmd {
	case "build":
		o := defaultBuildOptions()
		fs.StringVar(&o.Out, "out", o.Out, "output directory: <out>/<image> (OCI layout) and <out>/<image>.tar")
		fs.StringVar(&o.Version, "version", o.Version, "version (default: git describe --tags --always --dirty)")
		fs.StringVar(&o.Source, "source", o.Source, "org.opencontainers.image.source")
		repo := fs.String("repo", o.Repos["bgplb"], "repository of the bgplb image (names the image in its archive)")
		podRepo := fs.String("podserver-repo", o.Repos["podserver"], "repository of the podserver image")
		pauseRepo := fs.String("pause-repo", o.Repos["pause"], "repository of the pause image (-images pause: the lab's sandbox image)")
		images := fs.String("images", strings.Join(o.Images, ","), "images to build")
		platforms := fs.String("platforms", strings.Join(o.Platforms, ","), "platforms (linux/<arch>)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		o.Images, o.Platforms = split(*images), split(*platforms)
		o.Repos["bgplb"], o.Repos["podserver"], o.Repos["pause"] = *repo, *podRepo, *pauseRepo
		res, err := Build(o)
		if err != nil {
			return err
		}
		for _, r := range res {
			fmt.Fprintf(stdout, "%s %s@%s (%s)\n", r.Name, r.Repo, r.Digest, r.Layout)
		}
		return nil
	case "push":
		dir := fs.String("layout", "", "OCI layout written by build")
		ref := fs.String("image", "", "registry/repo:tag to push to")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *dir == "" || *ref == "" {
			return fmt.Errorf("push needs -layout and -image (make push IMAGE=registry/repo:tag)")
		}
		d, err := Push(*dir, *ref)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s@%s\n", *ref, d)
		return nil
	case "extract":
		dir := fs.String("layout", "", "OCI layout written by build")
		platform := fs.String("platform", "linux/amd64", "platform to extract")
		out := fs.String("out", "", "directory to unpack into")
		flat := fs.Bool("flat", false, "write regular files by base name (bin directory) instead of their image paths")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *dir == "" || *out == "" {
			return fmt.Errorf("extract needs -layout and -out")
		}
		idx, err := ReadLayout(*dir)
		if err != nil {
			return err
		}
		files, err := ExtractPlatform(idx, *platform, *out, *flat)
		if err != nil {
			return err
		}
		for _, f := range files {
			fmt.Fprintln(stdout, f)
		}
		return nil
	case "tar":
		dir := fs.String("layout", "", "OCI layout written by build")
		out := fs.String("out", "", "archive to write")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *dir == "" || *out == "" {
			return fmt.Errorf("tar needs -layout and -out")
		}
		return WriteArchive(*dir, *out)
	case "chart":
		dir := fs.String("dir", "manifests/charts/bgplb", "chart directory")
		ver := fs.String("version", "", "release version (v prefix dropped for the chart's version)")
		out := fs.String("out", "", "directory for <name>-<version>.tgz")
		dir2 := fs.String("layout", "", "OCI layout of the bgplb image: pin the chart's image.digest to its index")
		repo := fs.String("repo", "", "set the chart's image.repository")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *ver == "" || *out == "" {
			return fmt.Errorf("chart needs -version and -out")
		}
		values := map[string]string{}
		if *repo != "" {
			values["repository"] = *repo
		}
		if *dir2 != "" {
			d, err := LayoutDigest(*dir2)
			if err != nil {
				return err
			}
			values["digest"] = d.String()
		}
		epoch, err := sourceDateEpoch()
		if err != nil {
			return err
		}
		path, err := PackageChart(*dir, *ver, *out, epoch, values)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, path)
		return nil
	case "manifest":
		base := fs.String("base", "manifests/base", "kustomization directory")
		dir := fs.String("layout", "", "OCI layout of the bgplb image (its digest pins the image)")
		repo := fs.String("repo", defaultRepo, "image repository the manifests pull from")
		out := fs.String("out", "", "file to write")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *dir == "" || *out == "" {
			return fmt.Errorf("manifest needs -layout and -out")
		}
		d, err := LayoutDigest(*dir)
		if err != nil {
			return err
		}
		return WriteManifest(*base, *repo+"@"+d.String(), *out)
	case "digest":
		dir := fs.String("layout", "", "OCI layout written by build")
		if err := fs.Parse(args); err != nil {
			return err
		}
		d, err := LayoutDigest(*dir)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, d)
		return nil
	case "version", "--version":
		fmt.Fprintf(stdout, "imagebuild version %s\n", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown subcommand %q", cmd)
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
