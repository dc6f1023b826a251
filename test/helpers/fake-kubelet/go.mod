module kubelet-lxc.test/fake-kubelet

go 1.22
