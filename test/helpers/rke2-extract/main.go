// rke2-extract loads and extracts an RKE2 runtime image exactly the way an RKE2 agent does at
// start (rancher/rke2 pkg/bootstrap Stage): it looks the reference up in the tarballs of an
// agent/images folder with wharfie's tarfile.FindImage (docker-archive, RepoTags matched against
// the reference; .tar, .tar.zst with a 32 MiB decoder memory limit, ...), then flattens the layers
// and writes /bin and /charts with wharfie's extract.ExtractDirs (mode masked to 0755).
//
//	rke2-extract <images-dir> <image-ref> <out-dir>
//
// Prints one JSON line: the data folder name RKE2 would use (<tag>-<12 hex of sha256(ref)>).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/rancher/wharfie/pkg/extract"
	"github.com/rancher/wharfie/pkg/tarfile"
	"github.com/sirupsen/logrus"
)

var releasePattern = regexp.MustCompile("^v[0-9]")

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: rke2-extract <images-dir> <image-ref> <out-dir>")
		os.Exit(2)
	}
	logrus.SetLevel(logrus.WarnLevel)
	imagesDir, refStr, outDir := os.Args[1], os.Args[2], os.Args[3]
	ref, err := name.ParseReference(refStr)
	if err != nil {
		fail(err)
	}
	tag, ok := ref.(name.Tag)
	if !ok || !releasePattern.MatchString(tag.TagStr()) {
		fail(fmt.Errorf("runtime image %s is not a version tag matching %s", refStr, releasePattern))
	}
	sum := sha256.Sum256([]byte(ref.String()))
	dataName := tag.TagStr() + "-" + hex.EncodeToString(sum[:])[:12]

	img, err := tarfile.FindImage(imagesDir, ref)
	if err != nil {
		fail(err)
	}
	digest, err := img.Digest()
	if err != nil {
		fail(err)
	}
	dirs := map[string]string{
		"/bin":    filepath.Join(outDir, "bin"),
		"/charts": filepath.Join(outDir, "charts"),
	}
	if err := extract.ExtractDirs(img, dirs); err != nil {
		fail(err)
	}
	if err := os.Chmod(dirs["/bin"], 0755); err != nil {
		fail(err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]string{"dataDir": dataName, "reference": ref.String(), "manifestDigest": digest.String()})
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "rke2-extract:", err)
	os.Exit(1)
}
