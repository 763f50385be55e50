// Performance: BenchmarkDotNet benchmarks, the side-by-side comparison with PyTorch, and the memory soak.
//
//   dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- compare [--rounds 2] [--networks smallcnn,inception] [--output FILE.md]
//       [--python PATH]... (default /usr/bin/python3; repeat for one column pair per PyTorch) [--channels-last] [--autocast bf16] [--fuse] (PyTorch side)
//   dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- roofline [--networks smallcnn,inception,resnet50] [--workloads fgsm,...] [--output FILE.md]
//   dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- precision --model m.advml [--count 2000]   (bf16 against fp32 on a trained model)
//   dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- soak [--batches 2000]
//   dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- kernels [--max-channels 160]   (issue 25: which conv kernels are wrong on this CPU)
//   dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- candidates [--network inception] [--workloads fgsm,train-step]   (issue 25: correct fast paths, timed with the gate)
//   dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- gc-stress [--seconds 600]   (issue 13: native lifetimes under forced GCs)
//   mpirun -np 2 dotnet test/Microsoft.ML.Adversarial.PerformanceTests/bin/Release/net10.0/Microsoft.ML.Adversarial.PerformanceTests.dll allreduce [--rounds 20]   (issue 18, docs/scale.md)
//   OMP_NUM_THREADS=1 mpirun -np 2 dotnet test/Microsoft.ML.Adversarial.PerformanceTests/bin/Release/net10.0/Microsoft.ML.Adversarial.PerformanceTests.dll overlap [--rounds 10] [--bucket-mb 4] [--smallcnn-bucket-mb 0.5] [--batch 32] [--cases smallcnn,linear]   (issue 30, docs/scale.md)
//   dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- autoattack-reference --reference DIR [--count 500] [--attacks apgd-ce,apgd-t,fab-t,square] [--seeds 0,1,2] [--epsilon 8] [--network smallcnn|resnet18] [--train-count 3000] [--train-epochs 3]   (issue 28: ours vs fra31/auto-attack; attack "autoattack" is the standard ensemble)
//   dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- bench [BenchmarkDotNet arguments, e.g. --filter *MLNetPath*]
//   dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- make-folder --count 10000 --output DIR   (issue 17: N Fashion-MNIST variants as PNGs)
//   dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- make-jpegs --count 512 --size 299 --output DIR; ... -- decode --folder DIR --workers 2
//   dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- stream-train --folder DIR --mode stream|memory [--steps 40] [--workers 2]
using BenchmarkDotNet.Running;
using Microsoft.ML.Adversarial.PerformanceTests;

string mode = args.Length > 0 ? args[0] : "compare";
var rest = args.Skip(1).ToArray();
string Arg(string name, string fallback)
{
    int i = Array.IndexOf(rest, name);
    return i >= 0 && i + 1 < rest.Length ? rest[i + 1] : fallback;
}
string[] All(string name, string fallback)
{
    var values = rest.Select((a, i) => (a, i)).Where(t => t.a == name && t.i + 1 < rest.Length).Select(t => rest[t.i + 1]).ToArray();
    return values.Length > 0 ? values : new[] { fallback };
}

switch (mode)
{
    case "compare":
        return Harness.Compare(int.Parse(Arg("--rounds", "2")), Arg("--networks", "smallcnn,inception").Split(','), int.Parse(Arg("--threads", "2")), Arg("--output", ""),
            All("--python", PyTorchSide.DefaultPython), SpeedOptions.Parse(rest.Contains("--channels-last"), Arg("--autocast", ""), rest.Contains("--fuse")));
    case "roofline":
        return Roofline.Run(Arg("--networks", "smallcnn,inception").Split(','), Arg("--workloads", string.Join(",", Workload.Names)).Split(','), int.Parse(Arg("--threads", "2")),
            int.Parse(Arg("--peak-reps", "10")), rest.Contains("--count-only"), Arg("--output", ""));
    case "candidates":
        return Candidates.Run(Arg("--network", "inception"), Arg("--workloads", "fgsm,train-step").Split(','), int.Parse(Arg("--threads", "2")),
            rest.Contains("--child"), Arg("--child", ""));
    case "kernels":
        return KernelSweep.Run(int.Parse(Arg("--max-channels", "160")), int.Parse(Arg("--threads", "2")));
    case "precision":
        return PrecisionTradeOff.Run(Arg("--model", "m.advml"), int.Parse(Arg("--count", "2000")), int.Parse(Arg("--threads", "2")));
    case "soak":
        return Soak.Run(int.Parse(Arg("--batches", "2000")), int.Parse(Arg("--every", "100")), int.Parse(Arg("--threads", "2")), Arg("--output", ""));
    case "gc-stress":
        return GcStress.Run(int.Parse(Arg("--seconds", "600")), int.Parse(Arg("--threads", "2")));
    case "allreduce":
        return AllreduceBench.Run(int.Parse(Arg("--rounds", "20")), long.Parse(Arg("--floats", "23800000")));
    case "overlap":
        return OverlapBench.Run(int.Parse(Arg("--rounds", "10")), long.Parse(Arg("--floats", "23800000")), double.Parse(Arg("--bucket-mb", "4"), System.Globalization.CultureInfo.InvariantCulture),
            double.Parse(Arg("--smallcnn-bucket-mb", "0.5"), System.Globalization.CultureInfo.InvariantCulture), int.Parse(Arg("--batch", "32")), Arg("--cases", "smallcnn,linear"));
    case "make-folder":
        return Streaming.MakeFolder(int.Parse(Arg("--count", "10000")), Arg("--output", "/dev/shm/advml-folder"));
    case "stream-train":
        return Streaming.Train(Arg("--folder", "/dev/shm/advml-folder"), Arg("--mode", "stream") == "stream", int.Parse(Arg("--steps", "40")), int.Parse(Arg("--workers", "2")),
            int.Parse(Arg("--threads", "1")));
    case "make-jpegs":
        return Streaming.MakeJpegs(int.Parse(Arg("--count", "512")), int.Parse(Arg("--size", "299")), Arg("--output", "/dev/shm/advml-jpegs"));
    case "decode":
        return Streaming.Decode(Arg("--folder", "/dev/shm/advml-jpegs"), int.Parse(Arg("--size", "299")), int.Parse(Arg("--workers", "1")));
    case "autoattack-reference" when rest.Contains("--trace"):
        return AutoAttackReference.Trace(Arg("--reference", ""), Arg("--python", PyTorchSide.DefaultPython), int.Parse(Arg("--count", "500")), int.Parse(Arg("--train-count", "3000")),
            int.Parse(Arg("--seed", "0")), double.Parse(Arg("--epsilon", "8"), System.Globalization.CultureInfo.InvariantCulture), int.Parse(Arg("--threads", "2")));
    case "autoattack-reference":
        return AutoAttackReference.Run(Arg("--reference", ""), Arg("--python", PyTorchSide.DefaultPython), int.Parse(Arg("--count", "500")), int.Parse(Arg("--train-count", "3000")),
            Arg("--attacks", "apgd-ce,apgd-t,fab-t,square").Split(','), Arg("--seeds", "0,1,2").Split(',').Select(int.Parse).ToArray(), int.Parse(Arg("--threads", "2")),
            double.Parse(Arg("--epsilon", "8"), System.Globalization.CultureInfo.InvariantCulture), Arg("--network", "smallcnn"), int.Parse(Arg("--train-epochs", "3")));
    case "bench":
        BenchmarkSwitcher.FromAssembly(typeof(AttackBenchmarks).Assembly).Run(rest);
        return 0;
    default:
        Console.Error.WriteLine($"Unknown mode '{mode}'. Use compare, roofline, precision, soak, gc-stress, allreduce, overlap, make-folder, stream-train, make-jpegs, decode or bench.");
        return 2;
}
