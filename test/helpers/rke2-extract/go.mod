module kubelet-lxc.test/rke2-extract

go 1.24.13

require (
	github.com/google/go-containerregistry v0.20.3
	github.com/rancher/wharfie v0.7.1
	github.com/sirupsen/logrus v1.9.3
)

require (
	github.com/containerd/stargz-snapshotter/estargz v0.16.3 // indirect
	github.com/klauspost/compress v1.18.0 // indirect
	github.com/kr/pretty v0.3.1 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	github.com/pierrec/lz4 v2.6.0+incompatible // indirect
	github.com/vbatts/tar-split v0.11.6 // indirect
	golang.org/x/sync v0.17.0 // indirect
	golang.org/x/sys v0.36.0 // indirect
)
