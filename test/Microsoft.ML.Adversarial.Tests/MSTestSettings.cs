// Tests share two cores and TorchSharp's global thread pool; run them one at a time.
[assembly: DoNotParallelize]
