// Save and load through mlContext.Model need ML.NET's internal model-context API (docs/design.md).
// The compiler sees publicized copies of these two assemblies (build/Publicize.targets); this attribute tells the
// .NET runtime to allow the same accesses against the real, signed assemblies.
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Core")]
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Data")]

namespace System.Runtime.CompilerServices;

[AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
internal sealed class IgnoresAccessChecksToAttribute(string assemblyName) : Attribute
{
    public string AssemblyName { get; } = assemblyName;
}
