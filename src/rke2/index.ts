// RKE2 packaging for operators: the kubelet-path bundle, the runtime image, and the installer.
export { buildKubeletPathBundle, renderBundleReadme, renderInstallFile, INSTALL_SCRIPT_PATH, BUNDLE_FILES, type BundleOptions } from './bundle.js';
export {
  buildRuntimeImage,
  makeStandInBaseArchive,
  compressZstdForRke2,
  zstdWindowSize,
  assertZstdWindow,
  readRuntimeImageLabels,
  isStandInImage,
  RUNTIME_BINARIES,
  RKE2_MAX_ZSTD_WINDOW,
  type RuntimeImageOptions,
} from './runtime-image.js';
export { installBundle, InstallError, RESTART_HINT, type InstallOptions, type InstallReport } from './install.js';
export { renderKubeletPathDropIn, renderRuntimeImageDropIn, LXC_KUBELET_ARGS, LXC_KUBE_PROXY_ARGS, type LxcArg } from './config.js';
export { readDockerArchive, readDockerArchiveConfig, writeDockerArchive, type ImageConfig, type DockerArchiveImage } from './docker-archive.js';
export { assertElfArch } from '../lib/elf.js';
export {
  runtimeImageTag,
  runtimeImageFileBase,
  bundleBaseName,
  bundleFileName,
  installedKubeletPath,
  parseImageRef,
  normalizeRef,
  KUBELET_INSTALL_ROOT,
  DROPIN_INSTALL_PATH,
  ROLLBACK_STATE_DIR,
  INSTALL_LOCK_PATH,
  KUBELET_DROPIN_NAME,
  RUNTIME_IMAGE_SNIPPET_NAME,
  RUNTIME_IMAGE_DROPIN_PATH,
  STAND_IN_LABEL,
  RUNTIME_IMAGE_REPO,
  resolvesNowhere,
} from './names.js';
