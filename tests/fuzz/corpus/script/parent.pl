use parent -norequire, "Foo::Bar";
