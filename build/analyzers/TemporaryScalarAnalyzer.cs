using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Microsoft.ML.Adversarial.Analyzers;

/// <summary>
/// ADVML001: a number (or bool) made into a temporary TorchSharp <c>Scalar</c> for a libtorch call. TorchSharp 0.107
/// passes only the Scalar's raw handle to native code; a garbage collection on another thread during the call lets the
/// finalizer free it while libtorch reads it (a crash, or a silently wrong value). Three forms make one: an implicit or
/// explicit conversion to Scalar (<c>full(n, e)</c>, <c>t.gt(0)</c>), a tensor operator with a number (<c>t * 2.0</c>), a
/// Scalar parameter left to its default, and <c>a + b</c>, <c>a.add(b)</c> (which add with a hidden alpha of 1). The fix:
/// <c>HeldScalars</c> (<c>Plus</c>, <c>Times</c>, <c>Full</c>, ...) or a static held Scalar.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class TemporaryScalarAnalyzer : DiagnosticAnalyzer
{
    public const string Id = "ADVML001";

    private static readonly DiagnosticDescriptor Rule = new(Id, "Temporary TorchSharp Scalar",
        "{0} makes a temporary TorchSharp Scalar that a GC on another thread can free while libtorch reads it; use HeldScalars (Plus, Times, Full, Greater, ...) or a static held Scalar",
        "Reliability", DiagnosticSeverity.Error, isEnabledByDefault: true,
        description: "TorchSharp 0.107 gives libtorch only the raw handle of a Scalar made from a number; nothing keeps it alive during the call.",
        helpLinkUri: "https://github.com/dotnet/machinelearning/blob/main/docs/architecture.md");

    /// <summary>ADVML002: a literal 0 that C# turns into TorchSharp's ScalarType (0 is Byte): <c>t.sum(0)</c> binds to <c>sum(ScalarType)</c>.</summary>
    public const string ZeroAsDtypeId = "ADVML002";

    private static readonly DiagnosticDescriptor ZeroAsDtype = new(ZeroAsDtypeId, "Literal 0 read as a TorchSharp ScalarType",
        "The literal 0 here is the ScalarType Byte (C# converts 0 to any enum), not a dimension: '{0}' runs {1} with dtype Byte; name the argument (dim: 0) or the type (ScalarType.Byte)",
        "Reliability", DiagnosticSeverity.Error, isEnabledByDefault: true,
        description: "TorchSharp overloads such as sum(ScalarType? type) take a bare 0 before sum(long dim): the whole tensor is summed into one byte.");

    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => ImmutableArray.Create(Rule, ZeroAsDtype);

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var scalar = start.Compilation.GetTypeByMetadataName("TorchSharp.Scalar");
            var tensor = start.Compilation.GetTypeByMetadataName("TorchSharp.torch+Tensor");
            if (scalar is null) return; // a project without TorchSharp
            var scalarType = start.Compilation.GetTypeByMetadataName("TorchSharp.torch+ScalarType");
            if (scalarType is not null)
                start.RegisterOperationAction(c =>
                {
                    var argument = (IArgumentOperation)c.Operation;
                    if (argument.ArgumentKind != ArgumentKind.Explicit || argument.Parameter is not { } p) return;
                    var type = p.Type is INamedTypeSymbol { OriginalDefinition.SpecialType: SpecialType.System_Nullable_T } nullable ? nullable.TypeArguments[0] : p.Type;
                    if (!SymbolEqualityComparer.Default.Equals(type, scalarType)) return;
                    var value = argument.Value is IConversionOperation conv ? conv.Operand : argument.Value;
                    if (value is ILiteralOperation && value.Type?.SpecialType == SpecialType.System_Int32)
                        c.ReportDiagnostic(Diagnostic.Create(ZeroAsDtype, argument.Syntax.GetLocation(), argument.Parent?.Syntax.ToString() ?? argument.Syntax.ToString(), p.ContainingSymbol.Name));
                }, OperationKind.Argument);
            start.RegisterOperationAction(c =>
            {
                var conversion = (IConversionOperation)c.Operation;
                if (conversion.OperatorMethod is { } op && SymbolEqualityComparer.Default.Equals(op.ContainingType, scalar)
                    && SymbolEqualityComparer.Default.Equals(conversion.Type, scalar) && !SymbolEqualityComparer.Default.Equals(conversion.Operand.Type, scalar))
                    c.ReportDiagnostic(Diagnostic.Create(Rule, conversion.Syntax.GetLocation(), $"'{conversion.Operand.Syntax}' ({conversion.Operand.Type?.Name ?? "a number"} to Scalar)"));
            }, OperationKind.Conversion);
            start.RegisterOperationAction(c =>
            {
                var argument = (IArgumentOperation)c.Operation;
                if (argument.ArgumentKind == ArgumentKind.DefaultValue && argument.Parameter is { } p && SymbolEqualityComparer.Default.Equals(p.Type, scalar))
                    c.ReportDiagnostic(Diagnostic.Create(Rule, argument.Parent?.Syntax.GetLocation() ?? argument.Syntax.GetLocation(), $"The default of parameter '{p.Name}' of {p.ContainingSymbol.Name}"));
            }, OperationKind.Argument);
            if (tensor is null) return;
            // add(b) and add_(b) are add(b, 1) inside TorchSharp: a Scalar made out of sight.
            start.RegisterOperationAction(c =>
            {
                var call = (IInvocationOperation)c.Operation;
                var m = call.TargetMethod;
                if (m.Name is "add" or "add_" && (SymbolEqualityComparer.Default.Equals(m.ContainingType, tensor) || m.ContainingType?.ToDisplayString() == "TorchSharp.torch")
                    && m.Parameters.Length > 0 && m.Parameters.All(p => SymbolEqualityComparer.Default.Equals(p.Type, tensor)))
                    c.ReportDiagnostic(Diagnostic.Create(Rule, call.Syntax.GetLocation(), $"'{call.Syntax}' (add without alpha adds with a hidden alpha of 1; write a.Plus(b))"));
            }, OperationKind.Invocation);
            // Tensor operators: a + b adds with a hidden alpha of 1; an operator taking a number (t * 2, 1 - t; TorchSharp
            // declares them for int, long, float, double, ...) makes the Scalar inside TorchSharp, out of sight.
            void CheckOperator(OperationAnalysisContext c, IMethodSymbol? op, BinaryOperatorKind kind, IOperation left, IOperation right, SyntaxNode syntax)
            {
                if (op is null || !SymbolEqualityComparer.Default.Equals(op.ContainingType, tensor)) return;
                bool leftTensor = SymbolEqualityComparer.Default.Equals(left.Type, tensor), rightTensor = SymbolEqualityComparer.Default.Equals(right.Type, tensor);
                if (leftTensor && rightTensor)
                {
                    if (kind == BinaryOperatorKind.Add)
                        c.ReportDiagnostic(Diagnostic.Create(Rule, syntax.GetLocation(), $"Tensor '{syntax}' (a hidden alpha of 1; write a.Plus(b))"));
                    return;
                }
                var number = leftTensor ? right : left;
                if (!SymbolEqualityComparer.Default.Equals(number.Type, scalar) && op.Parameters.All(p => !SymbolEqualityComparer.Default.Equals(p.Type, scalar)))
                    c.ReportDiagnostic(Diagnostic.Create(Rule, syntax.GetLocation(), $"'{syntax}' (a number in a tensor operator; write Plus, Minus, Times, ...)"));
            }
            start.RegisterOperationAction(c =>
            {
                var binary = (IBinaryOperation)c.Operation;
                CheckOperator(c, binary.OperatorMethod, binary.OperatorKind, binary.LeftOperand, binary.RightOperand, binary.Syntax);
            }, OperationKind.Binary);
            start.RegisterOperationAction(c =>
            {
                var compound = (ICompoundAssignmentOperation)c.Operation;
                CheckOperator(c, compound.OperatorMethod, compound.OperatorKind, compound.Target, compound.Value, compound.Syntax);
            }, OperationKind.CompoundAssignment);
        });
    }
}
