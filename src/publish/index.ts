// The publish stage: public surface for the CLI.
export {
  runPublish,
  formatReport,
  releaseTag,
  releaseName,
  releaseBody,
  retryPolicyFromEnv,
  PublishError,
  DEFAULT_API_URL,
  type PublishOptions,
  type PublishReport,
  type AssetReport,
  type AssetAction,
  type AssetPlan,
  type RemovedAsset,
} from './publish.js';
export { SUMS_NAME, readAssets, compareSums } from './assets.js';
export { GitHubError } from './github.js';
export { maskSecrets } from '../lib/exec.js';
